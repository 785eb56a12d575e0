//! Terms as text: [`parse`] reads Erlang's syntax, [`iex`] prints as iex does.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::{self, Write as _};

use eetf::{Atom, BitBinary, ByteList, ImproperList, InternalFun, List, Map, Term, Tuple};
use num_bigint::BigInt;

use super::proper;
use super::ser::{atom, integer};
use super::MAX_DEPTH;

/// Where a line of Erlang syntax went wrong, and why.
///
/// # Examples
///
/// ```
/// use beamport::term::{self, ParseReason};
/// let err = term::parse("{ok, [1, 2}").unwrap_err();
/// assert_eq!(err.column, 11);
/// assert_eq!(err.reason, ParseReason::Unexpected { found: '}', expected: "',', '|' or ']'" });
/// assert_eq!(err.to_string(), "column 11: found '}', expected ',', '|' or ']'");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct ParseError {
    /// The column (in characters, from 1) where the problem is.
    pub column: usize,
    /// What is wrong there.
    pub reason: ParseReason,
}

/// Why a line is not a term (see [`ParseError`]).
///
/// ```
/// use beamport::term::{self, ParseReason};
/// assert_eq!(term::parse("<<300>>").unwrap_err().reason, ParseReason::Segment { value: "300".into(), bits: 8 });
/// assert_eq!(term::parse("[1 2]").unwrap_err().reason, ParseReason::Unexpected { found: '2', expected: "',', '|' or ']'" });
/// assert_eq!(term::parse("{a").unwrap_err().reason, ParseReason::End { expected: "',' or '}'" });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseReason {
    /// A character that cannot come here.
    #[error("found {found:?}, expected {expected}")]
    Unexpected {
        /// The character.
        found: char,
        /// What could have come.
        expected: &'static str,
    },
    /// The line ends too early.
    #[error("the line ends; expected {expected}")]
    End {
        /// What could have come.
        expected: &'static str,
    },
    /// A malformed number.
    #[error("{0:?} is not a number")]
    Number(String),
    /// An unknown escape sequence in a string or a quoted atom.
    #[error("unknown escape sequence")]
    Escape,
    /// A binary segment that does not fit its size.
    #[error("{value} does not fit in {bits} bits")]
    Segment {
        /// The value.
        value: String,
        /// The segment's size in bits.
        bits: u32,
    },
    /// A character above 255 in a binary's string segment without `/utf8`.
    #[error("{0:?} does not fit in a byte: write \"…\"/utf8")]
    Wide(char),
    /// An atom of more than 255 characters.
    #[error("an atom of {0} characters; at most 255")]
    AtomTooLong(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("nested more than {0} levels deep")]
    TooDeep(usize),
    /// Something after the term.
    #[error("{0:?} after the term")]
    Trailing(char),
}

/// Reads a term written in Erlang's syntax: integers (`42`, `-1`, `16#ff`, `$a`, big ones),
/// floats (`1.5`, `2.0e-3`), atoms (`ok`, `'with space'`, and Elixir's `:ok`), strings
/// (`"abc"`, a list, as in Erlang), binaries (`<<"abc">>`, `<<1, 2>>`, `<<"é"/utf8>>`,
/// `<<5:3>>`), lists (`[1, 2 | T]`), tuples and maps (`#{a => 1}`, or Elixir's `%{a => 1}`).
/// A final `.` is allowed.
///
/// The term is the one [`decode`](super::decode) gives for what the VM encodes from the
/// same text: a list of integers from 0 to 255, such as `"abc"` or `[1, 2]`, is a
/// [`ByteList`], as `STRING_EXT` decodes.
///
/// # Errors
///
/// [`ParseError`], naming the column and what was expected there.
///
/// # Examples
///
/// ```
/// use beamport::term;
/// let t = term::parse("{ok, [1, 2, 3], 'Quoted', <<\"bin\">>, #{k => \"v\"}, 1.5e3, 16#ff, $a}.").unwrap();
/// assert_eq!(term::iex(&t).to_string(), r#"{:ok, [1, 2, 3], :Quoted, "bin", %{k: 'v'}, 1.5e3, 255, 97}"#);
/// assert_eq!(term::parse("[a | b]").unwrap(), term::parse("[a|b]").unwrap());
/// assert_eq!(term::parse("{ok,").unwrap_err().to_string(), "column 5: the line ends; expected a term");
/// ```
pub fn parse(text: &str) -> Result<Term, ParseError> {
    let mut p = Parser { chars: text.chars().collect(), pos: 0, depth: 0 };
    let t = p.term()?;
    p.space();
    if p.peek() == Some('.') {
        p.pos += 1;
        p.space();
    }
    match p.peek() {
        None => Ok(t),
        Some(c) => Err(p.error(ParseReason::Trailing(c))),
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn error(&self, reason: ParseReason) -> ParseError {
        ParseError { column: self.pos + 1, reason }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn unexpected(&self, expected: &'static str) -> ParseError {
        match self.peek() {
            Some(found) => self.error(ParseReason::Unexpected { found, expected }),
            None => self.error(ParseReason::End { expected }),
        }
    }

    fn expect(&mut self, c: char, expected: &'static str) -> Result<(), ParseError> {
        self.space();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars().enumerate().all(|(i, c)| self.chars.get(self.pos + i) == Some(&c))
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(ParseReason::TooDeep(MAX_DEPTH)));
        }
        self.depth += 1;
        Ok(())
    }

    /// One term. This function is on the recursion's path, so it only dispatches: its frame
    /// stays small, even in a debug build.
    fn term(&mut self) -> Result<Term, ParseError> {
        self.space();
        match self.peek() {
            Some('[') => self.list(),
            Some('{') => self.tuple(),
            Some('#' | '%') if self.chars.get(self.pos + 1) == Some(&'{') => self.map(),
            _ => self.scalar(),
        }
    }

    fn tuple(&mut self) -> Result<Term, ParseError> {
        self.pos += 1;
        self.enter()?;
        let elements = self.elements('}', "',' or '}'")?;
        self.depth -= 1;
        Ok(Term::from(Tuple::from(elements)))
    }

    /// A term that holds no other term.
    #[inline(never)]
    fn scalar(&mut self) -> Result<Term, ParseError> {
        let Some(c) = self.peek() else { return Err(self.unexpected("a term")) };
        match c {
            '0'..='9' | '-' | '+' => self.number(),
            '$' => {
                self.pos += 1;
                let c = self.char_in('\0')?.ok_or_else(|| self.unexpected("a character"))?;
                Ok(integer(u32::from(c)))
            }
            '\'' => {
                let start = self.pos;
                self.pos += 1;
                let name = self.quoted('\'')?;
                self.atom(name, start)
            }
            ':' => {
                let start = self.pos;
                self.pos += 1;
                let name = match self.peek() {
                    Some('"') => {
                        self.pos += 1;
                        self.quoted('"')?
                    }
                    _ => self.name().ok_or_else(|| self.unexpected("an atom's name"))?,
                };
                self.atom(name, start)
            }
            c if c.is_alphabetic() => {
                let start = self.pos;
                let name = self.name().unwrap_or_default();
                self.atom(name, start)
            }
            '"' => {
                self.pos += 1;
                let s = self.quoted('"')?;
                Ok(string(&s))
            }
            '<' if self.starts_with("<<") => self.binary(),
            _ => Err(self.unexpected("a term")),
        }
    }

    /// An unquoted atom's name: letters, digits, `_` and `@` (and Elixir's final `?` or `!`).
    fn name(&mut self) -> Option<String> {
        let start = self.pos;
        if !self.peek().is_some_and(|c| c.is_alphabetic() || c == '_') {
            return None;
        }
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '@') {
            self.pos += 1;
        }
        if matches!(self.peek(), Some('?' | '!')) {
            self.pos += 1;
        }
        Some(self.chars[start..self.pos].iter().collect())
    }

    fn atom(&self, name: String, start: usize) -> Result<Term, ParseError> {
        let n = name.chars().count();
        if n > 255 {
            return Err(ParseError { column: start + 1, reason: ParseReason::AtomTooLong(n) });
        }
        Ok(Term::from(Atom::from(name)))
    }

    /// The rest of a quoted text up to `end`, escapes applied.
    fn quoted(&mut self, end: char) -> Result<String, ParseError> {
        let mut s = String::new();
        loop {
            match self.char_in(end)? {
                Some(c) => s.push(c),
                None => return Ok(s),
            }
        }
    }

    /// One character of a quoted text (or of `$c`), escapes applied; `None` at `end`.
    fn char_in(&mut self, end: char) -> Result<Option<char>, ParseError> {
        let what = if end == '"' { "a closing '\"'" } else { "a closing quote" };
        let Some(c) = self.peek() else { return Err(self.unexpected(what)) };
        self.pos += 1;
        if c == end && end != '\0' {
            return Ok(None);
        }
        if c != '\\' {
            return Ok(Some(c));
        }
        let bad = ParseError { column: self.pos, reason: ParseReason::Escape };
        let Some(e) = self.peek() else { return Err(self.unexpected(what)) };
        self.pos += 1;
        let c = match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            's' => ' ',
            'b' => '\x08',
            'd' => '\x7f',
            'e' => '\x1b',
            'f' => '\x0c',
            'v' => '\x0b',
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                char::from_u32(v).ok_or_else(|| bad.clone())?
            }
            'x' => {
                let digits: String = if self.peek() == Some('{') {
                    self.pos += 1;
                    let start = self.pos;
                    while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                        self.pos += 1;
                    }
                    let d = self.chars[start..self.pos].iter().collect();
                    if self.peek() != Some('}') {
                        return Err(bad);
                    }
                    self.pos += 1;
                    d
                } else {
                    let start = self.pos;
                    while self.pos < start + 2 && self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                        self.pos += 1;
                    }
                    self.chars[start..self.pos].iter().collect()
                };
                u32::from_str_radix(&digits, 16).ok().and_then(char::from_u32).ok_or_else(|| bad.clone())?
            }
            '^' => {
                let c = self.peek().filter(char::is_ascii_alphabetic).ok_or_else(|| bad.clone())?;
                self.pos += 1;
                char::from(c as u8 & 0x1f)
            }
            c => c, // \\, \', \", and any other character stands for itself, as in Erlang
        };
        Ok(Some(c))
    }

    fn number(&mut self) -> Result<Term, ParseError> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
        }
        let digits = |p: &mut Self, radix: u32| {
            while p.peek().is_some_and(|c| c.is_digit(radix) || c == '_') {
                p.pos += 1;
            }
        };
        digits(self, 10);
        let mut float = false;
        if self.peek() == Some('#') {
            let base: String = self.chars[start..self.pos].iter().filter(|c| c.is_ascii_digit()).collect();
            let neg = self.chars[start] == '-';
            let radix = base.parse::<u32>().ok().filter(|r| (2..=36).contains(r));
            self.pos += 1;
            let from = self.pos;
            digits(self, radix.unwrap_or(36));
            let text: String = self.chars[from..self.pos].iter().filter(|&&c| c != '_').collect();
            let value = radix.and_then(|r| BigInt::parse_bytes(text.as_bytes(), r));
            return match value {
                Some(v) => Ok(integer(if neg { -v } else { v })),
                None => Err(ParseError {
                    column: start + 1,
                    reason: ParseReason::Number(self.chars[start..self.pos].iter().collect()),
                }),
            };
        }
        if self.peek() == Some('.') && self.chars.get(self.pos + 1).is_some_and(char::is_ascii_digit) {
            float = true;
            self.pos += 1;
            digits(self, 10);
            if matches!(self.peek(), Some('e' | 'E')) {
                self.pos += 1;
                if matches!(self.peek(), Some('-' | '+')) {
                    self.pos += 1;
                }
                digits(self, 10);
            }
        }
        let text: String = self.chars[start..self.pos].iter().filter(|&&c| c != '_').collect();
        let bad = || ParseError {
            column: start + 1,
            reason: ParseReason::Number(self.chars[start..self.pos].iter().collect()),
        };
        if float {
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Term::from(eetf::Float { value: v })),
                _ => Err(bad()),
            }
        } else {
            text.trim_start_matches('+').parse::<BigInt>().map(integer).map_err(|_| bad())
        }
    }

    /// Terms separated by commas, up to `close`.
    fn elements(&mut self, close: char, expected: &'static str) -> Result<Vec<Term>, ParseError> {
        let mut elements = Vec::new();
        self.space();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(elements);
        }
        loop {
            elements.push(self.term()?);
            self.space();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(elements);
                }
                _ => return Err(self.unexpected(expected)),
            }
        }
    }

    fn list(&mut self) -> Result<Term, ParseError> {
        self.pos += 1;
        self.enter()?;
        let mut elements = Vec::new();
        self.space();
        if self.peek() == Some(']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Term::from(List::nil()));
        }
        let t = loop {
            elements.push(self.term()?);
            self.space();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {
                    self.pos += 1;
                    break proper(elements);
                }
                Some('|') => {
                    self.pos += 1;
                    let tail = self.term()?;
                    self.expect(']', "']'")?;
                    break match tail {
                        Term::List(l) => {
                            elements.extend(l.elements);
                            proper(elements)
                        }
                        Term::ByteList(b) => {
                            elements.extend(b.bytes.into_iter().map(integer));
                            proper(elements)
                        }
                        Term::ImproperList(l) => {
                            elements.extend(l.elements);
                            Term::from(ImproperList { elements, last: l.last })
                        }
                        last => Term::from(ImproperList::from((elements, last))),
                    };
                }
                _ => return Err(self.unexpected("',', '|' or ']'")),
            }
        };
        self.depth -= 1;
        Ok(t)
    }

    fn map(&mut self) -> Result<Term, ParseError> {
        self.pos += 2;
        self.enter()?;
        let mut map = HashMap::new();
        self.space();
        if self.peek() == Some('}') {
            self.pos += 1;
        } else {
            loop {
                let k = self.term()?;
                self.space();
                if !self.starts_with("=>") {
                    return Err(self.unexpected("'=>'"));
                }
                self.pos += 2;
                let v = self.term()?;
                map.insert(k, v); // a key given twice: the last value wins, as in Erlang
                self.space();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some('}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.unexpected("',' or '}'")),
                }
            }
        }
        self.depth -= 1;
        Ok(Term::from(Map::from(map)))
    }

    fn binary(&mut self) -> Result<Term, ParseError> {
        self.pos += 2;
        let mut bits = Bits::default();
        self.space();
        if self.starts_with(">>") {
            self.pos += 2;
            return Ok(bits.into_term());
        }
        loop {
            self.space();
            let seg_at = self.pos;
            match self.peek() {
                Some('"') => {
                    self.pos += 1;
                    let s = self.quoted('"')?;
                    self.space();
                    if self.starts_with("/utf8") {
                        self.pos += 5;
                        s.bytes().for_each(|b| bits.push(u64::from(b), 8));
                    } else {
                        for c in s.chars() {
                            let b = u8::try_from(u32::from(c))
                                .map_err(|_| ParseError { column: seg_at + 1, reason: ParseReason::Wide(c) })?;
                            bits.push(u64::from(b), 8);
                        }
                    }
                }
                Some('0'..='9' | '-' | '$') => {
                    let v = match self.term()? {
                        Term::FixInteger(i) => BigInt::from(i.value),
                        Term::BigInteger(b) => b.value,
                        _ => return Err(self.error(ParseReason::Number("a segment".into()))),
                    };
                    self.space();
                    let mut size = 8;
                    if self.peek() == Some(':') {
                        self.pos += 1;
                        self.space();
                        let at = self.pos;
                        size = match self.number()? {
                            Term::FixInteger(i) if (1..=64).contains(&i.value) => i.value as u32,
                            _ => {
                                return Err(ParseError {
                                    column: at + 1,
                                    reason: ParseReason::Number("a size from 1 to 64".into()),
                                })
                            }
                        };
                    }
                    // Negative values are written in two's complement, as in Erlang.
                    let modulus = BigInt::from(1u8) << size;
                    let fits = v >= -(&modulus >> 1u8) && v < modulus;
                    let u = ((&v % &modulus) + &modulus) % &modulus;
                    match (fits, u64::try_from(&u)) {
                        (true, Ok(u)) => bits.push(u, size),
                        _ => {
                            return Err(ParseError {
                                column: seg_at + 1,
                                reason: ParseReason::Segment { value: v.to_string(), bits: size },
                            })
                        }
                    }
                }
                _ => return Err(self.unexpected("a string or an integer")),
            }
            self.space();
            if self.peek() == Some(',') {
                self.pos += 1;
            } else if self.starts_with(">>") {
                self.pos += 2;
                return Ok(bits.into_term());
            } else {
                return Err(self.unexpected("',' or '>>'"));
            }
        }
    }
}

/// A bitstring being built, most significant bit first.
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0: it is full, or there is none).
    used: u32,
}

impl Bits {
    fn push(&mut self, value: u64, size: u32) {
        for i in (0..size).rev() {
            let bit = (value >> i) & 1 == 1;
            if self.used == 0 {
                self.bytes.push(0);
            }
            if bit {
                *self.bytes.last_mut().expect("pushed") |= 0x80 >> self.used;
            }
            self.used = (self.used + 1) % 8;
        }
    }

    fn into_term(mut self) -> Term {
        match self.used {
            0 => Term::from(eetf::Binary::from(self.bytes)),
            used => {
                // eetf keeps the last byte's bits in its low bits.
                if let Some(last) = self.bytes.last_mut() {
                    *last >>= 8 - used;
                }
                Term::from(BitBinary::from((self.bytes, used as u8)))
            }
        }
    }
}

/// An Erlang string: a list of its characters (a [`ByteList`] when they are all bytes).
fn string(s: &str) -> Term {
    if s.is_empty() {
        Term::from(List::nil())
    } else if s.chars().all(|c| u32::from(c) < 256) {
        Term::from(ByteList::from(s.chars().map(|c| c as u8).collect::<Vec<u8>>()))
    } else {
        Term::from(List::from(s.chars().map(|c| integer(u32::from(c))).collect::<Vec<_>>()))
    }
}

/// Prints a term as iex does (`{:ok, [1, 2]}`, `%{a: 1}`, `"binary"`, `'charlist'`).
///
/// # Examples
///
/// ```
/// use beamport::term;
/// let t = term::parse("{ok, [{a, 1}], <<1, 2>>, \"hi\", [a | b], 'Elixir.Foo', #{1 => 2.5e20}}").unwrap();
/// assert_eq!(term::iex(&t).to_string(), "{:ok, [a: 1], <<1, 2>>, 'hi', [:a | :b], Foo, %{1 => 2.5e20}}");
/// ```
pub fn iex(term: &Term) -> Iex<'_> {
    Iex(term)
}

/// A term that prints as iex prints it; see [`iex`].
///
/// ```
/// use beamport::term::{self, Iex};
/// let t = term::parse("{error, enoent}").unwrap();
/// assert_eq!(format!("{}", Iex(&t)), "{:error, :enoent}");
/// assert_eq!(format!("{:?}", term::iex(&t)), "{:error, :enoent}");
/// ```
#[derive(Clone, Copy)]
pub struct Iex<'a>(pub &'a Term);

impl fmt::Display for Iex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        write_term(self.0, &mut out);
        f.write_str(&out)
    }
}

impl fmt::Debug for Iex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Whether an atom prints without quotes after `:` (or as a keyword key).
fn plain_atom(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else { return false };
    if !(first.is_alphabetic() || first == '_') {
        return false;
    }
    let rest: Vec<char> = chars.collect();
    let body = match rest.last() {
        Some('?' | '!') => &rest[..rest.len() - 1],
        _ => &rest[..],
    };
    body.iter().all(|c| c.is_alphanumeric() || *c == '_' || *c == '@')
}

/// An Elixir module's name (`Elixir.Foo.Bar` → `Foo.Bar`).
fn alias(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("Elixir.")?;
    rest.split('.')
        .all(|seg| {
            seg.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .then_some(rest)
}

fn write_atom(name: &str, out: &mut String) {
    if matches!(name, "true" | "false" | "nil") {
        out.push_str(name);
    } else if let Some(a) = alias(name) {
        out.push_str(a);
    } else if plain_atom(name) {
        out.push(':');
        out.push_str(name);
    } else {
        out.push_str(":\"");
        escape(name, '"', out);
        out.push('"');
    }
}

fn escape(s: &str, quote: char, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\x{{{:X}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// A float as Erlang's `io_lib_format:fwrite_g/1` (and so iex) prints it: the shortest
/// digits that read back as the same float, in fixed form unless the exponent form is
/// shorter or the float is at least 2^53.
fn write_float(v: f64, out: &mut String) {
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    if v < 0.0 {
        out.push('-');
    }
    let (digits, exp) = shortest(v.abs());
    let len = digits.len() as i64;
    let place = exp - (len - 1); // value = digits × 10^place
    let exp_text = exp.to_string();
    let exp_cost = exp_text.len() as i64 + 2;
    let insert_exp = |out: &mut String| {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        out.push('.');
        out.push_str(if rest.is_empty() { "0" } else { rest });
        out.push('e');
        out.push_str(&exp_text);
    };
    // The exponent form's extra characters, against the fixed form's zeros and ".0".
    let dot = i64::from(len == 1);
    if place < 0 {
        if exp >= 0 {
            let (int, frac) = digits.split_at((len + place) as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        } else if 2 - place - len <= exp_cost + dot {
            out.push_str("0.");
            out.push_str(&"0".repeat((-place - len) as usize));
            out.push_str(&digits);
        } else {
            insert_exp(out);
        }
    } else {
        // From 2^53 on, not every integer is a float: Erlang shows the exponent.
        if exp_cost + dot >= place + 2 && v.abs() < 9_007_199_254_740_992.0 {
            out.push_str(&digits);
            out.push_str(&"0".repeat(place as usize));
            out.push_str(".0");
        } else {
            insert_exp(out);
        }
    }
}

/// The shortest decimal digits that read back as `v` (positive, finite), and the exponent
/// of the first: `v ≈ d1.d2d3… × 10^exp`. Of two such digit strings equally short, the one
/// nearer `v`, and if both are as near, the one ending in an even digit, as Erlang chooses.
fn shortest(v: f64) -> (String, i64) {
    // `{:e}` gives the shortest digits that round-trip: "d.ddde±x".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i64 = exp.parse().unwrap_or(0);
    let Ok(d) = digits.parse::<u64>() else { return (digits, exp) };
    let place = exp - (digits.len() as i64 - 1);
    // Either neighbour may read back as `v` too; then the nearer wins.
    let exact = |c: u64| -> Option<BigInt> {
        let text = format!("{c}e{place}");
        (text.len() == digits.len() + format!("e{place}").len() && text.parse::<f64>().ok() == Some(v))
            .then(|| distance(c, place, v))
    };
    let mut best = (distance(d, place, v), d);
    for c in [d.wrapping_sub(1), d + 1] {
        if let Some(dist) = exact(c) {
            if dist < best.0 || (dist == best.0 && c % 2 == 0) {
                best = (dist, c);
            }
        }
    }
    (best.1.to_string(), exp)
}

/// `|c × 10^place − v|`, scaled by a common factor that makes it an integer.
fn distance(c: u64, place: i64, v: f64) -> BigInt {
    let bits = v.to_bits();
    let (e, m) = ((bits >> 52) as i64 & 0x7ff, bits & ((1 << 52) - 1));
    // v = m × 2^e exactly.
    let (m, e) = if e == 0 { (m, -1074) } else { (m | 1 << 52, e - 1075) };
    let ten = |n: i64| BigInt::from(10u8).pow(n as u32);
    let two = |n: i64| BigInt::from(1u8) << n as usize;
    let a = BigInt::from(c) * ten(place.max(0)) * two((-e).max(0));
    let b = BigInt::from(m) * two(e.max(0)) * ten((-place).max(0));
    let d = a - b;
    if d.sign() == num_bigint::Sign::Minus {
        -d
    } else {
        d
    }
}

/// The key of a keyword pair, if `t` is one.
fn keyword(t: &Term) -> Option<(&str, &Term)> {
    match t {
        Term::Tuple(t) if t.elements.len() == 2 => match &t.elements[0] {
            Term::Atom(a) if plain_atom(&a.name) || matches!(a.name.as_str(), "true" | "false" | "nil") => {
                Some((&a.name, &t.elements[1]))
            }
            _ => None,
        },
        _ => None,
    }
}

fn write_list<'a>(elements: impl Iterator<Item = &'a Term>, out: &mut String) {
    for (i, t) in elements.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_term(t, out);
    }
}

/// One term. This function is on the recursion's path, so it only dispatches: its frame
/// stays small, even in a debug build.
fn write_term(term: &Term, out: &mut String) {
    match term {
        Term::List(l) => write_proper(&l.elements, out),
        Term::ImproperList(l) => {
            out.push('[');
            write_list(l.elements.iter(), out);
            out.push_str(" | ");
            write_term(&l.last, out);
            out.push(']');
        }
        Term::Tuple(t) => {
            out.push('{');
            write_list(t.elements.iter(), out);
            out.push('}');
        }
        Term::Map(m) => write_map(m, out),
        t => write_scalar(t, out),
    }
}

fn write_proper(elements: &[Term], out: &mut String) {
    let bytes: Option<Vec<u8>> = elements
        .iter()
        .map(|t| match t {
            Term::FixInteger(i) => u8::try_from(i.value).ok(),
            _ => None,
        })
        .collect();
    if let Some(bytes) = bytes.filter(|b| !b.is_empty()) {
        crate::message::charlist(&bytes, out);
    } else if !elements.is_empty() && elements.iter().all(|t| keyword(t).is_some()) {
        out.push('[');
        for (i, (k, v)) in elements.iter().filter_map(keyword).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(k);
            out.push_str(": ");
            write_term(v, out);
        }
        out.push(']');
    } else {
        out.push('[');
        write_list(elements.iter(), out);
        out.push(']');
    }
}

/// A term that holds no other term.
#[inline(never)]
fn write_scalar(term: &Term, out: &mut String) {
    match term {
        Term::Atom(a) => write_atom(&a.name, out),
        Term::FixInteger(i) => {
            let _ = write!(out, "{}", i.value);
        }
        Term::BigInteger(b) => {
            let _ = write!(out, "{}", b.value);
        }
        Term::Float(f) => write_float(f.value, out),
        Term::Pid(p) => {
            let node = if p.node.name == "nonode@nohost" { "0" } else { &p.node.name };
            let _ = write!(out, "#PID<{node}.{}.{}>", p.id, p.serial);
        }
        Term::Port(p) => {
            let node = if p.node.name == "nonode@nohost" { "0" } else { &p.node.name };
            let _ = write!(out, "#Port<{node}.{}>", p.id);
        }
        Term::Reference(r) => {
            let node = if r.node.name == "nonode@nohost" { "0" } else { &r.node.name };
            let _ = write!(out, "#Reference<{node}");
            for w in r.id.iter().rev() {
                let _ = write!(out, ".{w}");
            }
            out.push('>');
        }
        Term::ExternalFun(f) => {
            out.push('&');
            match alias(&f.module.name) {
                Some(a) => out.push_str(a),
                None => write_atom(&f.module.name, out),
            }
            out.push('.');
            let name = &f.function.name;
            if plain_atom(name) {
                out.push_str(name);
            } else {
                out.push('"');
                escape(name, '"', out);
                out.push('"');
            }
            let _ = write!(out, "/{}", f.arity);
        }
        Term::InternalFun(f) => {
            let (module, index, uniq, arity) = match &**f {
                InternalFun::New { module, index, old_uniq, arity, .. } => {
                    (module, i64::from(*index), *old_uniq, *arity)
                }
                InternalFun::Old { module, index, uniq, free_vars, .. } => {
                    (module, i64::from(*index), *uniq, free_vars.len() as u8)
                }
            };
            let _ = write!(out, "#Function<{index}.{}/{arity} in ", uniq as u32);
            write_atom(&module.name, out);
            out.push('>');
        }
        Term::Binary(b) => crate::message::binary(&b.bytes, out),
        Term::BitBinary(b) => {
            out.push_str("<<");
            if let Some((last, init)) = b.bytes.split_last() {
                for x in init {
                    let _ = write!(out, "{x}, ");
                }
                let _ = write!(out, "{last}::size({})", b.tail_bits_size);
            }
            out.push_str(">>");
        }
        Term::ByteList(b) => crate::message::charlist(&b.bytes, out),
        t => write_term(t, out),
    }
}

fn write_map(m: &Map, out: &mut String) {
    let mut entries: Vec<(&Term, &Term)> = m.map.iter().collect();
    entries.sort_by(|a, b| order(a.0, b.0));
    let strukt = match m.map.get(&atom("__struct__")) {
        Some(Term::Atom(a)) => alias(&a.name),
        _ => None,
    };
    if strukt.is_some() {
        entries.retain(|(k, _)| !matches!(k, Term::Atom(a) if a.name == "__struct__"));
    }
    let keyword_keys = entries.iter().all(|(k, _)| matches!(k, Term::Atom(a) if plain_atom(&a.name) || matches!(a.name.as_str(), "true" | "false" | "nil")));
    out.push('%');
    if let Some(s) = strukt {
        out.push_str(s);
    }
    out.push('{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match k {
            Term::Atom(a) if keyword_keys => {
                out.push_str(&a.name);
                out.push_str(": ");
            }
            k => {
                write_term(k, out);
                out.push_str(" => ");
            }
        }
        write_term(v, out);
    }
    out.push('}');
}

/// Erlang's term order (number < atom < reference < fun < port < pid < tuple < map < list
/// < bitstring), which iex uses to print a map's keys.
fn order(a: &Term, b: &Term) -> Ordering {
    fn rank(t: &Term) -> u8 {
        match t {
            Term::FixInteger(_) | Term::BigInteger(_) | Term::Float(_) => 0,
            Term::Atom(_) => 1,
            Term::Reference(_) => 2,
            Term::ExternalFun(_) | Term::InternalFun(_) => 3,
            Term::Port(_) => 4,
            Term::Pid(_) => 5,
            Term::Tuple(_) => 6,
            Term::Map(_) => 7,
            Term::List(_) | Term::ByteList(_) | Term::ImproperList(_) => 8,
            Term::Binary(_) | Term::BitBinary(_) => 9,
        }
    }
    fn number(t: &Term) -> Option<(f64, Option<BigInt>)> {
        match t {
            Term::FixInteger(i) => Some((f64::from(i.value), Some(BigInt::from(i.value)))),
            Term::BigInteger(b) => Some((b.value.to_string().parse().unwrap_or(0.0), Some(b.value.clone()))),
            Term::Float(f) => Some((f.value, None)),
            _ => None,
        }
    }
    fn elements(t: &Term) -> (Vec<Term>, Option<&Term>) {
        match t {
            Term::List(l) => (l.elements.clone(), None),
            Term::ByteList(b) => (b.bytes.iter().map(|&x| integer(x)).collect(), None),
            Term::ImproperList(l) => (l.elements.clone(), Some(&l.last)),
            _ => (Vec::new(), None),
        }
    }
    match rank(a).cmp(&rank(b)) {
        Ordering::Equal => {}
        o => return o,
    }
    match (a, b) {
        (x, y) if rank(x) == 0 => {
            let ((fa, ia), (fb, ib)) = (number(x).unwrap_or_default(), number(y).unwrap_or_default());
            match (ia, ib) {
                (Some(ia), Some(ib)) => ia.cmp(&ib),
                // Equal numbers: an integer comes first (as map keys are ordered).
                (ia, ib) => fa.total_cmp(&fb).then(ib.is_none().cmp(&ia.is_none()).reverse()),
            }
        }
        (Term::Atom(x), Term::Atom(y)) => x.name.cmp(&y.name),
        (Term::Tuple(x), Term::Tuple(y)) => x.elements.len().cmp(&y.elements.len()).then_with(|| {
            x.elements.iter().zip(&y.elements).map(|(p, q)| order(p, q)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
        }),
        (Term::Map(x), Term::Map(y)) => x.map.len().cmp(&y.map.len()).then_with(|| {
            fn sorted(m: &Map) -> Vec<(&Term, &Term)> {
                let mut v: Vec<(&Term, &Term)> = m.map.iter().collect();
                v.sort_by(|p, q| order(p.0, q.0));
                v
            }
            let (sx, sy) = (sorted(x), sorted(y));
            sx.iter()
                .zip(&sy)
                .map(|(p, q)| order(p.0, q.0))
                .chain(sx.iter().zip(&sy).map(|(p, q)| order(p.1, q.1)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }),
        (x, y) if rank(x) == 8 => {
            let ((ex, tx), (ey, ty)) = (elements(x), elements(y));
            for (p, q) in ex.iter().zip(&ey) {
                match order(p, q) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            match ex.len().cmp(&ey.len()) {
                Ordering::Equal => match (tx, ty) {
                    (Some(p), Some(q)) => order(p, q),
                    (p, q) => p.is_some().cmp(&q.is_some()),
                },
                o => o,
            }
        }
        (Term::Binary(x), Term::Binary(y)) => x.bytes.cmp(&y.bytes),
        (x, y) => format!("{x:?}").cmp(&format!("{y:?}")),
    }
}
