//! Erlang's External Term Format, both ways (the `term` feature): what `term_to_binary`
//! writes and `binary_to_term` reads, so that a Rust port program can talk to a BEAM that
//! speaks terms over `{:packet, 4}`, and a beamport host can talk to a port program written
//! against `ei` or in Erlang.
//!
//! Terms are [`eetf`]'s [`Term`] (version 0.11, the one `erl_dist` uses, so that terms from a
//! distribution connection and from a port are the same type). The codec is this module's
//! own: [`decode`] refuses what the VM refuses with a [`DecodeError`] naming the offset and
//! the reason, never panics, and allocates nothing the input's bytes do not account for
//! (a header claiming 4 G elements is an error, not an allocation); [`encode`] writes what
//! the VM writes.
//!
//! - Port programs: [`Channel::read_term`](crate::program::Channel::read_term) and
//!   [`Channel::write_term`](crate::program::Channel::write_term).
//! - Hosts: [`Port::command_term`](crate::Port::command_term),
//!   [`Process::receive_term`](crate::Process::receive_term), and
//!   [`Port::send_term`](crate::Port::send_term) for messages in the VM's shape
//!   (`{pid, {:command, data}}`, `{pid, :close}`, `{pid, {:connect, new}}`).
//! - Rust types: [`to_term`] and [`from_term`], through serde, in Elixir's usual shapes
//!   (table below).
//! - Text: [`parse`] reads Erlang syntax (`{ok, [1, 2, 3]}`); [`iex`] prints as iex does.
//!
//! ```
//! use beamport::term::{self, Term};
//!
//! let t: Term = term::parse("{ok, #{name => <<\"beamport\">>, tags => [port, \"rust\"]}}").unwrap();
//! let bytes = term::encode(&t).unwrap();           // :erlang.term_to_binary(t)
//! assert_eq!(term::decode(&bytes).unwrap(), t);   // :erlang.binary_to_term(bytes)
//! assert_eq!(term::iex(&t).to_string(), r#"{:ok, %{name: "beamport", tags: [:port, 'rust']}}"#);
//! ```
//!
//! # Rust values as terms
//!
//! [`to_term`] and [`from_term`] map serde's data model onto the shapes Elixir and Erlang
//! code use:
//!
//! | Rust | term | Elixir |
//! |---|---|---|
//! | `bool` | `true` / `false` | `true` / `false` |
//! | integers (`i8` … `u128`) | integer (big when needed) | `42` |
//! | `f32`, `f64` | float (an integer is accepted when reading) | `1.5` |
//! | `char`, `String`, `&str` | UTF-8 binary (a charlist or an atom is accepted when reading) | `"text"` |
//! | `serde_bytes`, `&[u8]` via `serialize_bytes` | binary | `<<1, 2>>` |
//! | `None`, `()`, unit struct | `nil` (`undefined` is accepted as `None`) | `nil` |
//! | `Some(x)`, newtype struct `W(x)` | `x` | |
//! | `Vec<T>`, sequences | list | `[1, 2]` |
//! | tuples, tuple structs | tuple | `{1, "a"}` |
//! | `HashMap<K, V>`, maps | map | `%{"a" => 1}` |
//! | struct `S { a, b }` | map with atom keys (a keyword list or an Elixir struct is accepted when reading) | `%{a: 1, b: 2}` |
//! | unit variant `E::NotFound` | atom, in snake case | `:not_found` |
//! | newtype variant `E::Error(x)` | `{tag, x}`; `tag` alone when `x` is `nil` | `{:error, x}` |
//! | tuple variant `E::Move(x, y)` | `{tag, x, y}` | `{:move, 1, 2}` |
//! | struct variant `E::Rect { w, h }` | `{tag, %{w: …, h: …}}` | `{:rect, %{w: 1, h: 2}}` |
//! | `Ok(x)` / `Err(e)` | `{:ok, x}` / `{:error, e}`; `:ok` for `Ok(())` | `{:ok, x}` / `{:error, e}` |
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use beamport::term;
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum Request { Get(String), Put(String, i64), Stats }
//!
//! let req: Request = term::from_term(&term::parse("{put, <<\"apples\">>, 3}").unwrap()).unwrap();
//! assert_eq!(req, Request::Put("apples".into(), 3));
//! let reply: Result<i64, String> = Ok(3);
//! assert_eq!(term::iex(&term::to_term(&reply).unwrap()).to_string(), "{:ok, 3}");
//! assert_eq!(term::iex(&term::to_term(&Request::Stats).unwrap()).to_string(), ":stats");
//! ```

mod de;
mod decode;
mod encode;
mod error;
mod host;
mod ser;
mod tag;
mod text;

#[cfg(test)]
mod tests;

pub use eetf;
pub use eetf::{
    Atom, BigInteger, Binary, BitBinary, ByteList, ExternalFun, FixInteger, Float, ImproperList, InternalFun, List,
    Map, Reference, Term, Tuple,
};
/// The `num-bigint` crate, whose `BigInt` a [`BigInteger`] holds.
pub use num_bigint;

pub use self::de::from_term;
pub use self::decode::{decode, decode_with, MAX_DECOMPRESSED};
pub use self::encode::{encode, encode_compressed, encode_to};
pub use self::error::{DecodeError, DecodeReason, EncodeError, Error};
pub use self::host::{from_pid, from_port};
pub use self::ser::{to_term, SerdeError};
pub use self::text::{iex, parse, Iex, ParseError, ParseReason};

/// A proper list in the one form [`decode`] gives each: a [`ByteList`] when it holds 1 to
/// 65535 integers from 0 to 255 (what the VM writes as a string), else a [`List`].
fn proper(elements: Vec<Term>) -> Term {
    let byte = |t: &Term| match t {
        Term::FixInteger(i) => u8::try_from(i.value).ok(),
        _ => None,
    };
    if (1..=0xffff).contains(&elements.len()) && elements.iter().all(|t| byte(t).is_some()) {
        Term::from(ByteList::from(elements.iter().filter_map(byte).collect::<Vec<u8>>()))
    } else {
        Term::from(List::from(elements))
    }
}

/// The deepest nesting of lists, tuples, maps and funs that [`decode`] accepts and
/// [`encode`] writes.
///
/// The VM has no such limit; beamport has one so that no input can exhaust a thread's stack:
/// decoding, encoding, dropping, cloning, comparing, hashing and printing a term all recurse
/// into it. In a debug build, with 2 MiB of stack (a spawned thread's default), each of them
/// reaches at least 1176 levels (`clone` of nested maps, then this decoder's 1265); at 512,
/// a thread has more than half its stack left for its own frames.
///
/// ```
/// use beamport::term::{self, DecodeReason, MAX_DEPTH};
/// let nested = |n: usize| [vec![131], [104u8, 1].repeat(n), vec![106]].concat(); // {{…{[]}…}}
/// assert!(term::decode(&nested(MAX_DEPTH)).is_ok());
/// assert_eq!(term::decode(&nested(MAX_DEPTH + 1)).unwrap_err().reason, DecodeReason::TooDeep(MAX_DEPTH));
/// ```
pub const MAX_DEPTH: usize = 512;
