//! `term_to_binary`: an [`eetf::Term`] to bytes the VM decodes to the same term.

use std::io::Write;

use bytes::BufMut;
use eetf::{Atom, BitBinary, InternalFun, Map, Pid, Term};

use super::error::EncodeError;
use super::tag::*;
use super::MAX_DEPTH;

/// Encodes a term as `:erlang.term_to_binary/1` does (atoms in UTF-8, as OTP 26 writes them
/// and every OTP since 20 reads them).
///
/// A [`List`](eetf::List) of integers from 0 to 255 (or a [`ByteList`](eetf::ByteList)) of
/// at most 65535 elements is written as the VM writes it, as a string (`STRING_EXT`); an
/// integer is written in the smallest form that holds it, whether it is a
/// [`FixInteger`](eetf::FixInteger) or a [`BigInteger`](eetf::BigInteger).
///
/// # Errors
///
/// [`EncodeError`] if the term has no form the VM would decode: an atom of more than 255
/// characters, a float that is not finite, a bitstring with no bits in its last byte, or a
/// term nested more than [`MAX_DEPTH`] levels.
///
/// # Examples
///
/// ```
/// use beamport::term::{self, Atom, FixInteger, List, Term, Tuple};
///
/// let ok = Term::from(Tuple::from(vec![
///     Term::from(Atom::from("ok")),
///     Term::from(List::from(vec![Term::from(FixInteger::from(-1)), Term::from(FixInteger::from(2))])),
/// ]));
/// let bytes = term::encode(&ok).unwrap(); // {:ok, [-1, 2]}
/// assert_eq!(bytes, [131, 104, 2, 119, 2, b'o', b'k', 108, 0, 0, 0, 2, 98, 255, 255, 255, 255, 97, 2, 106]);
/// assert_eq!(term::decode(&bytes).unwrap(), ok);
/// ```
pub fn encode(term: &Term) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_to(term, &mut out)?;
    Ok(out)
}

/// Like [`encode`], appending to `out`.
///
/// # Errors
///
/// As [`encode`]; `out` then holds part of the term after what it held before.
///
/// # Examples
///
/// ```
/// use beamport::term::{self, Atom, Term};
/// let mut out = bytes::BytesMut::from(&b"header"[..]);
/// term::encode_to(&Term::from(Atom::from("ok")), &mut out).unwrap();
/// assert_eq!(&out[..], b"header\x83\x77\x02ok");
/// ```
pub fn encode_to(term: &Term, out: &mut impl BufMut) -> Result<(), EncodeError> {
    out.put_u8(VERSION);
    Encoder { out, depth: 0 }.term(term)
}

/// Encodes a term compressed, as `:erlang.term_to_binary(term, [:compressed])` does
/// (zlib, at its default level).
///
/// # Errors
///
/// As [`encode`].
///
/// # Examples
///
/// ```
/// use beamport::term::{self, Binary, Term};
/// let big = Term::from(Binary::from(vec![b'a'; 10_000]));
/// let bytes = term::encode_compressed(&big).unwrap();
/// assert_eq!(bytes[..2], [131, 80]);
/// assert!(bytes.len() < 200);
/// assert_eq!(term::decode(&bytes).unwrap(), big);
/// ```
pub fn encode_compressed(term: &Term) -> Result<Vec<u8>, EncodeError> {
    let mut plain = Vec::new();
    Encoder { out: &mut plain, depth: 0 }.term(term)?;
    let size = u32::try_from(plain.len()).map_err(|_| EncodeError::TooLong { what: "a term", len: plain.len() })?;
    let mut out = vec![VERSION, COMPRESSED];
    out.extend_from_slice(&size.to_be_bytes());
    // Writing to a Vec cannot fail.
    let mut z = libflate::zlib::Encoder::new(out).expect("zlib into a Vec");
    z.write_all(&plain).expect("zlib into a Vec");
    Ok(z.finish().into_result().expect("zlib into a Vec"))
}

struct Encoder<'a, B> {
    out: &'a mut B,
    depth: usize,
}

/// The byte of a list's element, if it is one (a list of bytes is written as a string).
fn byte(t: &Term) -> Option<u8> {
    match t {
        Term::FixInteger(i) => u8::try_from(i.value).ok(),
        _ => None,
    }
}

fn len32(len: usize, what: &'static str) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLong { what, len })
}

impl<B: BufMut> Encoder<'_, B> {
    fn enter(&mut self) -> Result<(), EncodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(EncodeError::TooDeep(MAX_DEPTH));
        }
        self.depth += 1;
        Ok(())
    }

    fn terms(&mut self, terms: &[Term]) -> Result<(), EncodeError> {
        terms.iter().try_for_each(|t| self.term(t))
    }

    /// One term. This function is on the recursion's path, so it only dispatches: its frame
    /// stays small, even in a debug build.
    fn term(&mut self, term: &Term) -> Result<(), EncodeError> {
        match term {
            Term::List(l) => self.list(&l.elements),
            Term::ImproperList(l) => self.improper(&l.elements, &l.last),
            Term::Tuple(t) => self.tuple(&t.elements),
            Term::Map(m) => self.map(m),
            Term::InternalFun(f) => self.fun(f),
            t => self.scalar(t),
        }
    }

    fn list(&mut self, elements: &[Term]) -> Result<(), EncodeError> {
        if elements.is_empty() {
            self.out.put_u8(NIL_EXT);
        } else if elements.len() <= 0xffff && elements.iter().all(|t| byte(t).is_some()) {
            self.out.put_u8(STRING_EXT);
            self.out.put_u16(elements.len() as u16);
            elements.iter().for_each(|t| self.out.put_u8(byte(t).unwrap_or(0)));
        } else {
            self.enter()?;
            self.out.put_u8(LIST_EXT);
            self.out.put_u32(len32(elements.len(), "a list")?);
            self.terms(elements)?;
            self.out.put_u8(NIL_EXT);
            self.depth -= 1;
        }
        Ok(())
    }

    fn improper(&mut self, elements: &[Term], last: &Term) -> Result<(), EncodeError> {
        if elements.is_empty() {
            // `[ | tail]` is the tail itself.
            return self.term(last);
        }
        self.enter()?;
        self.out.put_u8(LIST_EXT);
        self.out.put_u32(len32(elements.len(), "a list")?);
        self.terms(elements)?;
        self.term(last)?;
        self.depth -= 1;
        Ok(())
    }

    fn tuple(&mut self, elements: &[Term]) -> Result<(), EncodeError> {
        self.enter()?;
        match u8::try_from(elements.len()) {
            Ok(n) => {
                self.out.put_u8(SMALL_TUPLE_EXT);
                self.out.put_u8(n);
            }
            Err(_) => {
                self.out.put_u8(LARGE_TUPLE_EXT);
                self.out.put_u32(len32(elements.len(), "a tuple")?);
            }
        }
        self.terms(elements)?;
        self.depth -= 1;
        Ok(())
    }

    fn map(&mut self, m: &Map) -> Result<(), EncodeError> {
        self.enter()?;
        self.out.put_u8(MAP_EXT);
        self.out.put_u32(len32(m.map.len(), "a map")?);
        for (k, v) in &m.map {
            self.term(k)?;
            self.term(v)?;
        }
        self.depth -= 1;
        Ok(())
    }

    /// A term that holds no other term.
    #[inline(never)]
    fn scalar(&mut self, term: &Term) -> Result<(), EncodeError> {
        match term {
            Term::Atom(a) => self.atom(a)?,
            Term::FixInteger(i) => self.integer(i.value),
            Term::BigInteger(b) => match i32::try_from(&b.value) {
                Ok(v) => self.integer(v),
                Err(_) => {
                    let (sign, digits) = b.value.to_bytes_le();
                    match u8::try_from(digits.len()) {
                        Ok(n) => {
                            self.out.put_u8(SMALL_BIG_EXT);
                            self.out.put_u8(n);
                        }
                        Err(_) => {
                            self.out.put_u8(LARGE_BIG_EXT);
                            self.out.put_u32(len32(digits.len(), "an integer")?);
                        }
                    }
                    self.out.put_u8(u8::from(sign == num_bigint::Sign::Minus));
                    self.out.put_slice(&digits);
                }
            },
            Term::Float(f) => {
                if !f.value.is_finite() {
                    return Err(EncodeError::NonFinite(f.value));
                }
                self.out.put_u8(NEW_FLOAT_EXT);
                self.out.put_f64(f.value);
            }
            Term::Pid(p) => self.pid(p)?,
            Term::Port(p) => {
                match u32::try_from(p.id) {
                    Ok(id) => {
                        self.out.put_u8(NEW_PORT_EXT);
                        self.atom(&p.node)?;
                        self.out.put_u32(id);
                    }
                    Err(_) => {
                        self.out.put_u8(V4_PORT_EXT);
                        self.atom(&p.node)?;
                        self.out.put_u64(p.id);
                    }
                }
                self.out.put_u32(p.creation);
            }
            Term::Reference(r) => {
                let n = u16::try_from(r.id.len())
                    .map_err(|_| EncodeError::TooLong { what: "a reference", len: r.id.len() })?;
                self.out.put_u8(NEWER_REFERENCE_EXT);
                self.out.put_u16(n);
                self.atom(&r.node)?;
                self.out.put_u32(r.creation);
                r.id.iter().for_each(|w| self.out.put_u32(*w));
            }
            Term::ExternalFun(f) => {
                self.out.put_u8(EXPORT_EXT);
                self.atom(&f.module)?;
                self.atom(&f.function)?;
                self.integer(i32::from(f.arity));
            }
            Term::Binary(b) => {
                self.out.put_u8(BINARY_EXT);
                self.out.put_u32(len32(b.bytes.len(), "a binary")?);
                self.out.put_slice(&b.bytes);
            }
            Term::BitBinary(b) => self.bitstring(b)?,
            Term::ByteList(b) => match b.bytes.len() {
                0 => self.out.put_u8(NIL_EXT),
                n @ 1..=0xffff => {
                    self.out.put_u8(STRING_EXT);
                    self.out.put_u16(n as u16);
                    self.out.put_slice(&b.bytes);
                }
                n => {
                    self.enter()?;
                    self.out.put_u8(LIST_EXT);
                    self.out.put_u32(len32(n, "a list")?);
                    for &x in &b.bytes {
                        self.integer(i32::from(x));
                    }
                    self.out.put_u8(NIL_EXT);
                    self.depth -= 1;
                }
            },
            t => return self.term(t),
        }
        Ok(())
    }

    fn integer(&mut self, v: i32) {
        match u8::try_from(v) {
            Ok(b) => {
                self.out.put_u8(SMALL_INTEGER_EXT);
                self.out.put_u8(b);
            }
            Err(_) => {
                self.out.put_u8(INTEGER_EXT);
                self.out.put_i32(v);
            }
        }
    }

    fn atom(&mut self, a: &Atom) -> Result<(), EncodeError> {
        // A name of at most 255 bytes has at most 255 characters.
        if a.name.len() > 255 {
            let chars = a.name.chars().count();
            if chars > 255 {
                return Err(EncodeError::AtomTooLong(chars));
            }
        }
        match u8::try_from(a.name.len()) {
            Ok(n) => {
                self.out.put_u8(SMALL_ATOM_UTF8_EXT);
                self.out.put_u8(n);
            }
            Err(_) => {
                self.out.put_u8(ATOM_UTF8_EXT);
                // 255 characters are at most 1020 bytes.
                self.out.put_u16(a.name.len() as u16);
            }
        }
        self.out.put_slice(a.name.as_bytes());
        Ok(())
    }

    fn pid(&mut self, p: &Pid) -> Result<(), EncodeError> {
        self.out.put_u8(NEW_PID_EXT);
        self.atom(&p.node)?;
        self.out.put_u32(p.id);
        self.out.put_u32(p.serial);
        self.out.put_u32(p.creation);
        Ok(())
    }

    fn bitstring(&mut self, b: &BitBinary) -> Result<(), EncodeError> {
        let Some((&last, init)) = b.bytes.split_last() else {
            self.out.put_u8(BINARY_EXT);
            self.out.put_u32(0);
            return Ok(());
        };
        let bits = b.tail_bits_size;
        if !(1..=8).contains(&bits) {
            return Err(EncodeError::BitSize(bits));
        }
        let n = len32(b.bytes.len(), "a bitstring")?;
        if bits == 8 {
            self.out.put_u8(BINARY_EXT);
            self.out.put_u32(n);
        } else {
            self.out.put_u8(BIT_BINARY_EXT);
            self.out.put_u32(n);
            self.out.put_u8(bits);
        }
        self.out.put_slice(init);
        // eetf keeps the last byte's bits in its low bits; the format, in its high bits.
        self.out.put_u8(last << (8 - bits));
        Ok(())
    }

    fn fun(&mut self, f: &InternalFun) -> Result<(), EncodeError> {
        self.enter()?;
        match f {
            InternalFun::New { module, arity, pid, free_vars, index, uniq, old_index, old_uniq } => {
                // Its size comes first and counts itself.
                let mut body = Vec::new();
                let mut e = Encoder { out: &mut body, depth: self.depth };
                e.out.put_u8(*arity);
                e.out.put_slice(uniq);
                e.out.put_u32(*index);
                e.out.put_u32(len32(free_vars.len(), "a fun's environment")?);
                e.atom(module)?;
                e.integer(*old_index);
                e.integer(*old_uniq);
                e.pid(pid)?;
                e.terms(free_vars)?;
                self.out.put_u8(NEW_FUN_EXT);
                self.out.put_u32(len32(body.len() + 4, "a fun")?);
                self.out.put_slice(&body);
            }
            InternalFun::Old { module, pid, free_vars, index, uniq } => {
                self.out.put_u8(FUN_EXT);
                self.out.put_u32(len32(free_vars.len(), "a fun's environment")?);
                self.pid(pid)?;
                self.atom(module)?;
                self.integer(*index);
                self.integer(*uniq);
                self.terms(free_vars)?;
            }
        }
        self.depth -= 1;
        Ok(())
    }
}
