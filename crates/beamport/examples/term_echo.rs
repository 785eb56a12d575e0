//! A port program for the BEAM that echoes terms: it reads each `{:packet, 4}` packet,
//! decodes it as a term, encodes the decoded term again and writes it back, until its
//! input ends. A packet that is not a term is answered with
//! `{:error, {:decode, offset, reason}}` and the echo goes on.
//!
//! ```elixir
//! port = Port.open({:spawn_executable, "target/release/examples/term_echo"}, [:binary, {:packet, 4}])
//! send(port, {self(), {:command, :erlang.term_to_binary({:hello, [1, 2.5, "three"]})}})
//! receive do
//!   {^port, {:data, reply}} -> :erlang.binary_to_term(reply) # {:hello, [1, 2.5, "three"]}
//! end
//! ```
//!
//! Arguments: `1`, `2` or `4` for `{:packet, N}` (4 by default), and `nouse_stdio` to talk on
//! fds 3 and 4 instead of stdin and stdout.

use std::io;

use beamport::framing::{Framing, PacketSize};
use beamport::program::Channel;
use beamport::term::{self, Atom, DecodeError, FixInteger, Term, Tuple};

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = match args.iter().find(|a| a.chars().all(|c| c.is_ascii_digit())).map(String::as_str) {
        Some("1") => PacketSize::One,
        Some("2") => PacketSize::Two,
        None | Some("4") => PacketSize::Four,
        Some(n) => return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{{packet, {n}}}: 1, 2 or 4"))),
    };
    let framing = Framing::Packet(size);
    let mut channel =
        if args.iter().any(|a| a == "nouse_stdio") { Channel::nouse_stdio(framing)? } else { Channel::stdio(framing)? };
    loop {
        match channel.read_term() {
            Ok(Some(term)) => channel.write_term(&term)?,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let reply = match e.get_ref().and_then(|e| e.downcast_ref::<DecodeError>()) {
                    Some(d) => decode_error(d),
                    None => return Err(e),
                };
                channel.write_term(&reply)?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `{:error, {:decode, offset, "reason"}}`.
fn decode_error(e: &DecodeError) -> Term {
    let tuple = |v: Vec<Term>| Term::from(Tuple::from(v));
    tuple(vec![
        Term::from(Atom::from("error")),
        tuple(vec![
            Term::from(Atom::from("decode")),
            Term::from(FixInteger::from(i32::try_from(e.offset).unwrap_or(i32::MAX))),
            Term::from(term::Binary::from(e.to_string().into_bytes())),
        ]),
    ])
}
