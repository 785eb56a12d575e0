//! `binary_to_term`: bytes to an [`eetf::Term`], for any input.
//!
//! Every length is checked against what is left of the input before anything is allocated
//! for it, and against what the elements already announced will need: a slot of a `Vec`
//! is only ever made for an element whose byte is still in the input, so the term's
//! `Vec`s together hold at most one element per input byte, however the headers nest.
//! A compressed term is decompressed up to its declared size, and that size must be one
//! zlib can produce from the bytes given (1032 to 1 at most).

use std::collections::hash_map::{Entry, HashMap};
use std::io::Read;

use eetf::{
    Atom, BigInteger, BitBinary, ByteList, ExternalFun, FixInteger, Float, ImproperList, InternalFun, List, Map, Pid,
    Port, Reference, Term, Tuple,
};
use num_bigint::{BigInt, Sign};

use super::error::{DecodeError, DecodeReason};
use super::tag::*;
use super::MAX_DEPTH;

/// Decodes one term, as `:erlang.binary_to_term/1` does: bytes after the term are ignored,
/// as the VM ignores them.
///
/// Each term has one form: a proper list of 1 to 65535 integers from 0 to 255 (which the VM
/// writes as a string, such as `'abc'`) decodes to a [`ByteList`], however it was written;
/// every other list to a [`List`] or an [`ImproperList`] (whose tail is not a list). Integers are
/// [`FixInteger`] when they fit an `i32`, else [`BigInteger`]. Atoms in Latin-1 (which OTP
/// 25 writes for atoms such as `'é'`) are read as such.
///
/// # Errors
///
/// A [`DecodeError`] with the offset and the reason when the bytes are not a term the VM
/// would accept, the term is nested more than [`MAX_DEPTH`] levels, a length field claims
/// more than the input holds, or a compressed term declares more than [`MAX_DECOMPRESSED`]
/// bytes. It never panics, and it allocates nothing that the input's bytes (a compressed
/// term's decompressed bytes) do not account for: each element of a list, tuple or map is
/// at least one of them.
///
/// # Examples
///
/// ```
/// use beamport::term::{self, Atom, FixInteger, Term, Tuple};
///
/// // :erlang.term_to_binary({:ok, 1})
/// let t = term::decode(&[131, 104, 2, 119, 2, b'o', b'k', 97, 1]).unwrap();
/// assert_eq!(t, Term::from(Tuple::from(vec![Term::from(Atom::from("ok")), Term::from(FixInteger::from(1))])));
///
/// let err = term::decode(&[131, 104, 2, 119, 2, b'o', b'k']).unwrap_err();
/// assert_eq!(err.to_string(), "at byte 7: the input ends inside a tag (1 more bytes needed)");
/// ```
pub fn decode(bytes: &[u8]) -> Result<Term, DecodeError> {
    decode_with(bytes, MAX_DECOMPRESSED)
}

/// The most a compressed term may decompress to in [`decode`]: 64 MiB.
///
/// ```
/// use beamport::term::{self, DecodeReason, MAX_DECOMPRESSED};
/// assert_eq!(MAX_DECOMPRESSED, 64 << 20);
/// // A compressed term that declares 2 GB, in 14 bytes: refused before anything is made.
/// let bomb = [131, 80, 0x7f, 0xff, 0xff, 0xff, 120, 156, 203, 2, 0, 0, 0, 107];
/// assert!(matches!(term::decode(&bomb).unwrap_err().reason, DecodeReason::CompressedTooLarge { .. }));
/// ```
pub const MAX_DECOMPRESSED: usize = 64 << 20;

/// Like [`decode`], with a compressed term allowed to decompress to `max_decompressed` bytes.
///
/// Without compression a term's memory is bounded by its bytes (each element of a list,
/// tuple or map takes at least one byte of input); a compressed term's by its decompressed
/// bytes, which zlib can make up to 1032 times as many as the compressed ones. This bounds
/// them.
///
/// # Errors
///
/// As [`decode`]; [`DecodeReason::CompressedTooLarge`] when a compressed term declares more
/// than `max_decompressed` bytes.
///
/// # Examples
///
/// ```
/// use beamport::term::{self, Binary, DecodeReason, Term};
/// let bytes = term::encode_compressed(&Term::from(Binary::from(vec![0; 100_000]))).unwrap();
/// assert!(bytes.len() < 200);
/// assert!(term::decode(&bytes).is_ok());
/// let err = term::decode_with(&bytes, 50_000).unwrap_err();
/// assert!(matches!(err.reason, DecodeReason::CompressedTooLarge { limit: 50_000, .. }));
/// ```
pub fn decode_with(bytes: &[u8], max_decompressed: usize) -> Result<Term, DecodeError> {
    let mut r = Reader::new(bytes, false);
    r.max_decompressed = max_decompressed;
    let version = r.u8("the version byte").map_err(|e| *e)?;
    if version != VERSION {
        return Err(*r.error(0, DecodeReason::Version(version)));
    }
    if r.buf.get(1) == Some(&COMPRESSED) {
        r.pos = 2;
        return r.compressed().map_err(|e| *e);
    }
    r.term().map_err(|e| *e)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Containers open around the current term.
    depth: usize,
    /// Elements announced by open containers and not started yet: each needs a byte.
    pending: usize,
    in_compressed: bool,
    max_decompressed: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], in_compressed: bool) -> Self {
        Reader { buf, pos: 0, depth: 0, pending: 0, in_compressed, max_decompressed: 0 }
    }

    fn error(&self, offset: usize, reason: DecodeReason) -> Box<DecodeError> {
        Box::new(DecodeError { offset, in_compressed: self.in_compressed, reason })
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Res<&'a [u8]> {
        if n > self.left() {
            return Err(self.error(self.pos, DecodeReason::Truncated { what, needed: n - self.left() }));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Res<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Res<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Res<u16> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Res<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Res<u64> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// Checks that `n` more elements of `what`, announced at `at`, can still come: the input
    /// must hold a byte for each, besides one for every element already announced.
    fn claim(&self, n: u64, what: &'static str, unit: &'static str, at: usize) -> Res<usize> {
        let left = self.left().saturating_sub(self.pending);
        match usize::try_from(n) {
            Ok(k) if k <= left => Ok(k),
            _ => Err(self.error(at, DecodeReason::TooLong { what, claimed: n, unit, left })),
        }
    }

    /// `n` bytes of `what`, whose length field starts at `at`. They cost no more memory than
    /// they take in the input, so only the input's end limits them.
    fn bytes(&mut self, n: u64, what: &'static str, at: usize) -> Res<&'a [u8]> {
        match usize::try_from(n) {
            Ok(k) if k <= self.left() => self.take(k, what),
            _ => Err(self.error(at, DecodeReason::TooLong { what, claimed: n, unit: "bytes", left: self.left() })),
        }
    }

    fn enter(&mut self, at: usize) -> Res<()> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(at, DecodeReason::TooDeep(MAX_DEPTH)));
        }
        self.depth += 1;
        Ok(())
    }

    /// `n` terms, announced at `at`, as elements of `what`; and a list's tail after them if
    /// `tail`.
    fn terms(&mut self, n: u64, tail: bool, what: &'static str, at: usize) -> Res<Vec<Term>> {
        let extra = u64::from(tail);
        if self.claim(n + extra, what, "elements", at).is_err() {
            // Report the claim as the header makes it.
            let left = self.left().saturating_sub(self.pending + usize::from(tail));
            return Err(self.error(at, DecodeReason::TooLong { what, claimed: n, unit: "elements", left }));
        }
        let n = (n + extra) as usize;
        self.enter(at)?;
        let mut elements = Vec::with_capacity(n);
        self.pending += n;
        for _ in 0..n {
            self.pending -= 1;
            elements.push(self.term()?);
        }
        self.depth -= 1;
        Ok(elements)
    }

    fn compressed(&mut self) -> Res<Term> {
        let declared = self.u32("a compressed term's size")?;
        let data = &self.buf[self.pos..];
        // Deflate codes at most 258 bytes in 2 bits: no stream makes more than 1032 bytes
        // per byte (the zlib header and checksum make up for the rounding).
        let limit = (data.len() as u64 * 1032).min(self.max_decompressed as u64);
        if u64::from(declared) > limit {
            return Err(self.error(2, DecodeReason::CompressedTooLarge { declared, limit }));
        }
        let zlib = |e: std::io::Error| self.error(6, DecodeReason::Zlib(e.to_string()));
        let mut out = Vec::new();
        libflate::zlib::Decoder::new(data)
            .map_err(zlib)?
            .take(u64::from(declared) + 1)
            .read_to_end(&mut out)
            .map_err(zlib)?;
        if out.len() != declared as usize {
            let more = out.len() > declared as usize;
            return Err(self.error(6, DecodeReason::CompressedSize { declared, found: out.len(), more }));
        }
        Reader::new(&out, true).term()
    }

    /// One term. This function is on the recursion's path, so it only dispatches: its frame
    /// stays small, even in a debug build, where every arm's locals would get their own
    /// slots.
    fn term(&mut self) -> Res<Term> {
        let at = self.pos;
        let tag = self.u8("a tag")?;
        match tag {
            SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => self.tuple(tag, at),
            LIST_EXT => self.list(at),
            MAP_EXT => self.map(at),
            NEW_FUN_EXT | FUN_EXT => self.fun(tag, at),
            _ => self.scalar(tag, at),
        }
    }

    fn tuple(&mut self, tag: u8, at: usize) -> Res<Term> {
        let n = match tag {
            SMALL_TUPLE_EXT => u32::from(self.u8("a tuple's size")?),
            _ => self.u32("a tuple's size")?,
        };
        Ok(Term::from(Tuple::from(self.terms(u64::from(n), false, "a tuple", at + 1)?)))
    }

    fn fun(&mut self, tag: u8, at: usize) -> Res<Term> {
        let head = self.fun_head(tag)?;
        let at = at + if tag == FUN_EXT { 1 } else { 26 };
        let free_vars = self.terms(u64::from(head.free), false, "a fun's environment", at)?;
        Ok(head.into_term(free_vars))
    }

    /// A fun's fields before its environment, boxed: they wait on the recursion's path.
    #[inline(never)]
    fn fun_head(&mut self, tag: u8) -> Res<Box<FunHead>> {
        if tag == FUN_EXT {
            let free = self.u32("a fun")?;
            let pid = self.pid("a fun's pid")?;
            let module = self.atom("a fun's module")?;
            let index = self.fun_integer("a fun's index")?;
            let uniq = self.fun_integer("a fun's uniq")?;
            return Ok(Box::new(FunHead { free, module, pid, new: None, old_index: index, old_uniq: uniq }));
        }
        let _size = self.u32("a fun")?;
        let arity = self.u8("a fun")?;
        let uniq = self.array::<16>("a fun")?;
        let index = self.u32("a fun")?;
        let free = self.u32("a fun")?;
        let module = self.atom("a fun's module")?;
        let old_index = self.fun_integer("a fun's old index")?;
        let old_uniq = self.fun_integer("a fun's old uniq")?;
        let pid = self.pid("a fun's pid")?;
        Ok(Box::new(FunHead { free, module, pid, new: Some((arity, index, uniq)), old_index, old_uniq }))
    }

    /// A term that holds no other term.
    #[inline(never)]
    fn scalar(&mut self, tag: u8, at: usize) -> Res<Term> {
        Ok(match tag {
            SMALL_INTEGER_EXT => Term::from(FixInteger::from(self.u8("a small integer")?)),
            INTEGER_EXT => Term::from(FixInteger::from(i32::from_be_bytes(self.array("an integer")?))),
            SMALL_BIG_EXT => {
                let n = self.u8("a big integer's length")?;
                self.big(u64::from(n), at + 1)?
            }
            LARGE_BIG_EXT => {
                let n = self.u32("a big integer's length")?;
                self.big(u64::from(n), at + 1)?
            }
            NEW_FLOAT_EXT => {
                let value = f64::from_be_bytes(self.array("a float")?);
                self.float(value, at)?
            }
            FLOAT_EXT => {
                let text = self.take(31, "a float")?;
                let text = String::from_utf8_lossy(text).trim_end_matches('\0').to_string();
                match text.trim().parse::<f64>() {
                    Ok(v) => self.float(v, at)?,
                    Err(_) => return Err(self.error(at + 1, DecodeReason::FloatText(text))),
                }
            }
            ATOM_EXT | SMALL_ATOM_EXT | ATOM_UTF8_EXT | SMALL_ATOM_UTF8_EXT => Term::from(self.atom_body(tag, at)?),
            NIL_EXT => Term::from(List::nil()),
            STRING_EXT => {
                let n = self.u16("a string's length")?;
                match self.bytes(u64::from(n), "a string", at + 1)? {
                    [] => Term::from(List::nil()),
                    b => Term::from(ByteList::from(b.to_vec())),
                }
            }
            BINARY_EXT => {
                let n = self.u32("a binary's length")?;
                Term::from(eetf::Binary::from(self.bytes(u64::from(n), "a binary", at + 1)?))
            }
            BIT_BINARY_EXT => {
                let n = self.u32("a bitstring's length")?;
                let bits = self.u8("a bitstring's bit count")?;
                match (n, bits) {
                    (0, 0) => Term::from(eetf::Binary::from(Vec::new())),
                    (1.., 1..=8) => {
                        let mut bytes = self.bytes(u64::from(n), "a bitstring", at + 1)?.to_vec();
                        if bits == 8 {
                            Term::from(eetf::Binary::from(bytes))
                        } else {
                            // eetf keeps the last byte's bits in its low bits.
                            if let Some(last) = bytes.last_mut() {
                                *last >>= 8 - bits;
                            }
                            Term::from(BitBinary::from((bytes, bits)))
                        }
                    }
                    _ => return Err(self.error(at + 1, DecodeReason::BitSize { len: n, bits })),
                }
            }
            NEW_PID_EXT | PID_EXT => Term::from(self.pid_body(tag)?),
            NEW_PORT_EXT | PORT_EXT | V4_PORT_EXT => {
                let node = self.atom("a port's node")?;
                let id = match tag {
                    V4_PORT_EXT => self.u64("a port")?,
                    _ => u64::from(self.u32("a port")?),
                };
                let creation = match tag {
                    PORT_EXT => u32::from(self.u8("a port")?),
                    _ => self.u32("a port")?,
                };
                Term::from(Port { node, id, creation })
            }
            NEWER_REFERENCE_EXT | NEW_REFERENCE_EXT => {
                let n = self.u16("a reference's length")?;
                let node = self.atom("a reference's node")?;
                let creation = match tag {
                    NEW_REFERENCE_EXT => u32::from(self.u8("a reference")?),
                    _ => self.u32("a reference")?,
                };
                let words = self.bytes(u64::from(n) * 4, "a reference", at + 1)?;
                let id = words.chunks_exact(4).map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]])).collect();
                Term::from(Reference { node, id, creation })
            }
            REFERENCE_EXT => {
                let node = self.atom("a reference's node")?;
                let id = vec![self.u32("a reference")?];
                let creation = u32::from(self.u8("a reference")?);
                Term::from(Reference { node, id, creation })
            }
            EXPORT_EXT => {
                let module = self.atom("a fun's module")?;
                let function = self.atom("a fun's function")?;
                let arity_at = self.pos;
                let arity = match self.integer("a fun's arity")? {
                    Some(n) if (0..=255).contains(&n) => n as u8,
                    _ => return Err(self.expected(arity_at, "a fun's arity", "an integer from 0 to 255")),
                };
                Term::from(ExternalFun { module, function, arity })
            }
            COMPRESSED => return Err(self.error(at, DecodeReason::NestedCompression)),
            DISTRIBUTION_HEADER | DIST_FRAG_HEADER | ATOM_CACHE_REF => {
                return Err(self.error(at, DecodeReason::DistributionOnly(tag)))
            }
            _ => return Err(self.error(at, DecodeReason::UnknownTag(tag))),
        })
    }

    fn float(&self, value: f64, at: usize) -> Res<Term> {
        if value.is_finite() {
            Ok(Term::from(Float { value }))
        } else {
            Err(self.error(at, DecodeReason::NonFinite))
        }
    }

    /// A big integer's sign and `n` digits; one that fits an `i32` is a [`FixInteger`], as
    /// the VM makes it a small integer.
    fn big(&mut self, n: u64, at: usize) -> Res<Term> {
        let sign_at = self.pos;
        let sign = match self.u8("a big integer's sign")? {
            0 => Sign::Plus,
            1 => Sign::Minus,
            s => return Err(self.error(sign_at, DecodeReason::Sign(s))),
        };
        let digits = self.bytes(n, "a big integer", at)?;
        let value = BigInt::from_bytes_le(sign, digits);
        Ok(match i32::try_from(&value) {
            Ok(v) => Term::from(FixInteger::from(v)),
            Err(_) => Term::from(BigInteger { value }),
        })
    }

    fn list(&mut self, at: usize) -> Res<Term> {
        let n = self.u32("a list's length")?;
        // The tail is one more term.
        let elements = self.terms(u64::from(n), true, "a list", at + 1)?;
        Ok(join(elements))
    }

    fn map(&mut self, at: usize) -> Res<Term> {
        let n = self.u32("a map's size")?;
        let n = self.claim(u64::from(n) * 2, "a map", "keys and values", at + 1)? / 2;
        self.enter(at + 1)?;
        // `n` is bounded by the input: two bytes an entry at least.
        let mut map = HashMap::with_capacity(n);
        let mut map_keys = MapKeys::default();
        self.pending += 2 * n;
        for _ in 0..n {
            self.entry(&mut map, &mut map_keys)?;
        }
        self.depth -= 1;
        Ok(Term::from(Map::from(map)))
    }

    fn entry(&mut self, map: &mut HashMap<Term, Term>, map_keys: &mut MapKeys) -> Res<()> {
        self.pending -= 1;
        let key_at = self.pos;
        let key = self.term()?;
        self.pending -= 1;
        let value = self.term()?;
        if map_keys.seen_before(&key, map) {
            return Err(self.error(key_at, DecodeReason::DuplicateKey));
        }
        match map.entry(key) {
            Entry::Occupied(_) => Err(self.error(key_at, DecodeReason::DuplicateKey)),
            Entry::Vacant(v) => {
                v.insert(value);
                Ok(())
            }
        }
    }

    /// An atom's name after its tag.
    fn atom_body(&mut self, tag: u8, at: usize) -> Res<Atom> {
        let n = match tag {
            ATOM_EXT | ATOM_UTF8_EXT => self.u16("an atom's length")?,
            _ => u16::from(self.u8("an atom's length")?),
        };
        let bytes = self.bytes(u64::from(n), "an atom", at + 1)?;
        let name: String = match (tag, std::str::from_utf8(bytes)) {
            // Latin-1 is ASCII's superset: ASCII names are valid either way.
            (ATOM_EXT | SMALL_ATOM_EXT, Ok(s)) if s.is_ascii() => s.to_string(),
            (ATOM_EXT | SMALL_ATOM_EXT, _) => bytes.iter().map(|&b| char::from(b)).collect(),
            (_, Ok(s)) => s.to_string(),
            (_, Err(_)) => return Err(self.error(at, DecodeReason::AtomNotUtf8)),
        };
        // A name of at most 255 bytes has at most 255 characters.
        if name.len() > 255 {
            let chars = name.chars().count();
            if chars > 255 {
                return Err(self.error(at, DecodeReason::AtomTooLong(chars)));
            }
        }
        Ok(Atom::from(name))
    }

    /// An atom where the format needs one (a node, a module).
    fn atom(&mut self, what: &'static str) -> Res<Atom> {
        let at = self.pos;
        match self.u8("a tag")? {
            tag @ (ATOM_EXT | SMALL_ATOM_EXT | ATOM_UTF8_EXT | SMALL_ATOM_UTF8_EXT) => self.atom_body(tag, at),
            _ => Err(self.expected(at, what, "an atom")),
        }
    }

    fn pid_body(&mut self, tag: u8) -> Res<Pid> {
        let node = self.atom("a pid's node")?;
        let id = self.u32("a pid")?;
        let serial = self.u32("a pid")?;
        let creation = match tag {
            PID_EXT => u32::from(self.u8("a pid")?),
            _ => self.u32("a pid")?,
        };
        Ok(Pid { node, id, serial, creation })
    }

    fn pid(&mut self, what: &'static str) -> Res<Pid> {
        let at = self.pos;
        match self.u8("a tag")? {
            tag @ (NEW_PID_EXT | PID_EXT) => self.pid_body(tag),
            _ => Err(self.expected(at, what, "a pid")),
        }
    }

    /// A small or 32-bit integer; `None` for any other term (which is skipped).
    fn integer(&mut self, what: &'static str) -> Res<Option<i64>> {
        match self.u8("a tag")? {
            SMALL_INTEGER_EXT => Ok(Some(i64::from(self.u8(what)?))),
            INTEGER_EXT => Ok(Some(i64::from(i32::from_be_bytes(self.array(what)?)))),
            _ => Ok(None),
        }
    }

    fn fun_integer(&mut self, what: &'static str) -> Res<i32> {
        let at = self.pos;
        match self.integer(what)? {
            Some(n) => Ok(n as i32),
            None => Err(self.expected(at, what, "a small integer")),
        }
    }

    fn expected(&self, at: usize, what: &'static str, expected: &'static str) -> Box<DecodeError> {
        self.error(at, DecodeReason::Expected { what, expected })
    }
}

/// A list's elements and, last, its tail. A tail that is itself a list continues the list,
/// as cons cells do on the VM; a proper list of bytes is a [`ByteList`] however it came.
#[inline(never)]
fn join(mut elements: Vec<Term>) -> Term {
    let tail = elements.pop().unwrap_or_else(|| Term::from(List::nil()));
    match tail {
        Term::List(l) if elements.is_empty() => Term::List(l),
        Term::List(l) => {
            elements.extend(l.elements);
            super::proper(elements)
        }
        Term::ByteList(b) => {
            elements.extend(b.bytes.into_iter().map(|b| Term::from(FixInteger::from(b))));
            super::proper(elements)
        }
        Term::ImproperList(l) => {
            elements.extend(l.elements);
            Term::from(ImproperList { elements, last: l.last })
        }
        last if elements.is_empty() => last,
        last => Term::from(ImproperList::from((elements, last))),
    }
}

/// The keys of a map being decoded that hold maps.
///
/// eetf hashes a map in its own iteration order, so two equal maps may hash apart, and a
/// `HashMap` does not see that two such keys are the same: these keys are compared through a
/// hash in which a map's entries count in any order.
#[derive(Default)]
struct MapKeys {
    hashes: std::collections::HashSet<u64>,
    state: std::hash::RandomState,
}

impl MapKeys {
    /// Whether `key`, if it holds a map, equals a key of `map` already.
    fn seen_before(&mut self, key: &Term, map: &HashMap<Term, Term>) -> bool {
        if !holds_map(key) {
            return false;
        }
        let h = self.hash(key);
        // A hash seen before: most likely the same key; look for it.
        !self.hashes.insert(h) && map.keys().any(|k| holds_map(k) && self.hash(k) == h && self.same(k, key))
    }

    fn hash(&self, t: &Term) -> u64 {
        use std::hash::BuildHasher;
        let mix = |parts: &mut dyn Iterator<Item = u64>| self.state.hash_one(parts.collect::<Vec<u64>>());
        match t {
            Term::Map(m) => {
                // The sum does not depend on the order of the entries.
                let sum = m
                    .map
                    .iter()
                    .fold(0u64, |acc, (k, v)| acc.wrapping_add(mix(&mut [self.hash(k), self.hash(v)].into_iter())));
                mix(&mut [7, m.map.len() as u64, sum].into_iter())
            }
            Term::List(l) => mix(&mut std::iter::once(1).chain(l.elements.iter().map(|e| self.hash(e)))),
            Term::Tuple(t) => mix(&mut std::iter::once(2).chain(t.elements.iter().map(|e| self.hash(e)))),
            Term::ImproperList(l) => {
                mix(&mut std::iter::once(3).chain(l.elements.iter().chain([&*l.last]).map(|e| self.hash(e))))
            }
            Term::InternalFun(f) => {
                let vars = match &**f {
                    InternalFun::New { free_vars, .. } | InternalFun::Old { free_vars, .. } => free_vars,
                };
                mix(&mut std::iter::once(4).chain(vars.iter().map(|e| self.hash(e))))
            }
            other => self.state.hash_one(other),
        }
    }

    /// Term equality in which maps compare by their entries, whatever their order and hashes.
    fn same(&self, a: &Term, b: &Term) -> bool {
        let all = |x: &[Term], y: &[Term]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| self.same(p, q));
        match (a, b) {
            (Term::Map(x), Term::Map(y)) => {
                if x.map.len() != y.map.len() {
                    return false;
                }
                // Keys that hold no map hash as they are; the others, through `hash`.
                let mut by_hash: HashMap<u64, Vec<(&Term, &Term)>> = HashMap::new();
                for (k, v) in y.map.iter().filter(|(k, _)| holds_map(k)) {
                    by_hash.entry(self.hash(k)).or_default().push((k, v));
                }
                x.map.iter().all(|(k, v)| {
                    if holds_map(k) {
                        by_hash
                            .get(&self.hash(k))
                            .is_some_and(|c| c.iter().any(|(k2, v2)| self.same(k, k2) && self.same(v, v2)))
                    } else {
                        y.map.get(k).is_some_and(|v2| self.same(v, v2))
                    }
                })
            }
            (Term::List(x), Term::List(y)) => all(&x.elements, &y.elements),
            (Term::Tuple(x), Term::Tuple(y)) => all(&x.elements, &y.elements),
            (Term::ImproperList(x), Term::ImproperList(y)) => {
                all(&x.elements, &y.elements) && self.same(&x.last, &y.last)
            }
            (Term::InternalFun(x), Term::InternalFun(y)) => match (&**x, &**y) {
                (
                    InternalFun::New { module, arity, pid, free_vars, index, uniq, old_index, old_uniq },
                    InternalFun::New {
                        module: m2,
                        arity: a2,
                        pid: p2,
                        free_vars: f2,
                        index: i2,
                        uniq: u2,
                        old_index: oi2,
                        old_uniq: ou2,
                    },
                ) => {
                    (module, arity, pid, index, uniq, old_index, old_uniq) == (m2, a2, p2, i2, u2, oi2, ou2)
                        && all(free_vars, f2)
                }
                (
                    InternalFun::Old { module, pid, free_vars, index, uniq },
                    InternalFun::Old { module: m2, pid: p2, free_vars: f2, index: i2, uniq: u2 },
                ) => (module, pid, index, uniq) == (m2, p2, i2, u2) && all(free_vars, f2),
                _ => false,
            },
            _ => a == b,
        }
    }
}

/// Whether a term holds a map, anywhere.
fn holds_map(t: &Term) -> bool {
    match t {
        Term::Map(_) => true,
        Term::List(l) => l.elements.iter().any(holds_map),
        Term::Tuple(t) => t.elements.iter().any(holds_map),
        Term::ImproperList(l) => l.elements.iter().any(holds_map) || holds_map(&l.last),
        Term::InternalFun(f) => match &**f {
            InternalFun::New { free_vars, .. } | InternalFun::Old { free_vars, .. } => free_vars.iter().any(holds_map),
        },
        _ => false,
    }
}

/// What a fun has besides its environment; `new` holds `NEW_FUN_EXT`'s arity, index and
/// uniq (`FUN_EXT` has only the old index and uniq).
struct FunHead {
    free: u32,
    module: Atom,
    pid: Pid,
    new: Option<(u8, u32, [u8; 16])>,
    old_index: i32,
    old_uniq: i32,
}

impl FunHead {
    #[inline(never)]
    fn into_term(self, free_vars: Vec<Term>) -> Term {
        let FunHead { module, pid, new, old_index, old_uniq, .. } = self;
        Term::from(match new {
            Some((arity, index, uniq)) => {
                InternalFun::New { module, arity, pid, free_vars, index, uniq, old_index, old_uniq }
            }
            None => InternalFun::Old { module, pid, free_vars, index: old_index, uniq: old_uniq },
        })
    }
}

/// Errors travel boxed inside the decoder: small results keep the recursion's frames small.
type Res<T> = Result<T, Box<DecodeError>>;
