//! Terms to Rust values, through serde (the mapping is in the module's docs).

use eetf::Term;
use num_bigint::BigInt;
use serde::de::{self, DeserializeSeed, Deserializer as _, IntoDeserializer, Visitor};
use serde::Deserialize;

use super::ser::{variant_atom, SerdeError};

impl de::Error for SerdeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SerdeError::Custom(msg.to_string())
    }
}

/// A term as a Rust value, from Elixir's usual shapes (see the [module docs](super)).
/// Strings and byte slices may borrow from the term.
///
/// # Errors
///
/// [`SerdeError::Mismatch`] when the term does not have the shape the type needs, naming
/// both; or an error of the type's own `Deserialize`.
///
/// # Examples
///
/// ```
/// use serde::Deserialize;
/// use beamport::term;
///
/// #[derive(Debug, Deserialize, PartialEq)]
/// struct User { name: String, admin: bool }
///
/// // A map with atom keys, a keyword list, or an Elixir struct (its __struct__ is ignored).
/// for text in ["#{name => <<\"ada\">>, admin => true}", "[{name, <<\"ada\">>}, {admin, true}]",
///              "#{'__struct__' => 'Elixir.User', name => \"ada\", admin => true}"] {
///     let u: User = term::from_term(&term::parse(text).unwrap()).unwrap();
///     assert_eq!(u, User { name: "ada".into(), admin: true });
/// }
/// let err = term::from_term::<User>(&term::parse("{user, <<\"ada\">>}").unwrap()).unwrap_err();
/// assert_eq!(err.to_string(), r#"expected struct User, found {:user, "ada"}"#);
/// ```
pub fn from_term<'de, T: Deserialize<'de>>(term: &'de Term) -> Result<T, SerdeError> {
    T::deserialize(Deserializer(term))
}

fn mismatch(expected: impl Into<String>, found: &Term) -> SerdeError {
    let mut found = super::iex(found).to_string();
    if found.chars().count() > 80 {
        found = found.chars().take(77).collect::<String>() + "...";
    }
    SerdeError::Mismatch { expected: expected.into(), found }
}

fn atom_name(t: &Term) -> Option<&str> {
    match t {
        Term::Atom(a) => Some(&a.name),
        _ => None,
    }
}

fn is_none(t: &Term) -> bool {
    matches!(atom_name(t), Some("nil" | "undefined"))
}

fn big(t: &Term) -> Option<BigInt> {
    match t {
        Term::FixInteger(i) => Some(BigInt::from(i.value)),
        Term::BigInteger(b) => Some(b.value.clone()),
        _ => None,
    }
}

/// The characters of a charlist (a list of code points), if it is one.
fn charlist(t: &Term) -> Option<String> {
    match t {
        Term::ByteList(b) => Some(b.bytes.iter().map(|&c| char::from(c)).collect()),
        Term::List(l) => l
            .elements
            .iter()
            .map(|e| match e {
                Term::FixInteger(i) => u32::try_from(i.value).ok().and_then(char::from_u32),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Key-value pairs of a keyword list or proplist: a list of 2-tuples.
fn pairs(t: &Term) -> Option<Vec<(&Term, &Term)>> {
    match t {
        Term::List(l) => l
            .elements
            .iter()
            .map(|e| match e {
                Term::Tuple(t) if t.elements.len() == 2 => Some((&t.elements[0], &t.elements[1])),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

struct Deserializer<'de>(&'de Term);

macro_rules! integer {
    ($name:ident, $visit:ident, $t:ty) => {
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
            match big(self.0).and_then(|b| <$t>::try_from(&b).ok()) {
                Some(v) => visitor.$visit(v),
                None => Err(mismatch(stringify!($t), self.0)),
            }
        }
    };
}

impl<'de> de::Deserializer<'de> for Deserializer<'de> {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Term::Atom(a) => match a.name.as_str() {
                "true" => visitor.visit_bool(true),
                "false" => visitor.visit_bool(false),
                "nil" => visitor.visit_unit(),
                name => visitor.visit_borrowed_str(name),
            },
            Term::FixInteger(i) => visitor.visit_i64(i64::from(i.value)),
            Term::BigInteger(b) => {
                if let Ok(v) = i64::try_from(&b.value) {
                    visitor.visit_i64(v)
                } else if let Ok(v) = u64::try_from(&b.value) {
                    visitor.visit_u64(v)
                } else if let Ok(v) = i128::try_from(&b.value) {
                    visitor.visit_i128(v)
                } else if let Ok(v) = u128::try_from(&b.value) {
                    visitor.visit_u128(v)
                } else {
                    Err(mismatch("an integer of at most 128 bits", self.0))
                }
            }
            Term::Float(f) => visitor.visit_f64(f.value),
            Term::Binary(b) => match std::str::from_utf8(&b.bytes) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(&b.bytes),
            },
            Term::ByteList(_) | Term::List(_) | Term::Tuple(_) => self.deserialize_seq(visitor),
            Term::Map(_) => self.deserialize_map(visitor),
            _ => Err(mismatch(
                "a term with a Rust value (not a pid, port, reference, fun, bitstring or improper list)",
                self.0,
            )),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match atom_name(self.0) {
            Some("true") => visitor.visit_bool(true),
            Some("false") => visitor.visit_bool(false),
            _ => Err(mismatch("true or false", self.0)),
        }
    }

    integer!(deserialize_i8, visit_i8, i8);
    integer!(deserialize_i16, visit_i16, i16);
    integer!(deserialize_i32, visit_i32, i32);
    integer!(deserialize_i64, visit_i64, i64);
    integer!(deserialize_i128, visit_i128, i128);
    integer!(deserialize_u8, visit_u8, u8);
    integer!(deserialize_u16, visit_u16, u16);
    integer!(deserialize_u32, visit_u32, u32);
    integer!(deserialize_u64, visit_u64, u64);
    integer!(deserialize_u128, visit_u128, u128);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Term::Float(f) => visitor.visit_f64(f.value),
            Term::FixInteger(i) => visitor.visit_f64(f64::from(i.value)),
            Term::BigInteger(b) => visitor.visit_f64(b.value.to_string().parse().unwrap_or(f64::NAN)),
            _ => Err(mismatch("a number", self.0)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        let one = |s: &str| {
            let mut chars = s.chars();
            chars.next().filter(|_| chars.next().is_none())
        };
        let c = match self.0 {
            Term::FixInteger(i) => u32::try_from(i.value).ok().and_then(char::from_u32),
            Term::Binary(b) => std::str::from_utf8(&b.bytes).ok().and_then(one),
            t => charlist(t).as_deref().and_then(one),
        };
        match c {
            Some(c) => visitor.visit_char(c),
            None => Err(mismatch("a character", self.0)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Term::Binary(b) => match std::str::from_utf8(&b.bytes) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => Err(mismatch("a UTF-8 binary", self.0)),
            },
            Term::Atom(a) => visitor.visit_borrowed_str(&a.name),
            t => match charlist(t) {
                Some(s) => visitor.visit_string(s),
                None => Err(mismatch("a string", self.0)),
            },
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Term::Binary(b) => visitor.visit_borrowed_bytes(&b.bytes),
            Term::ByteList(b) => visitor.visit_borrowed_bytes(&b.bytes),
            Term::List(l) if l.elements.is_empty() => visitor.visit_borrowed_bytes(&[]),
            _ => Err(mismatch("a binary", self.0)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        if is_none(self.0) {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match atom_name(self.0) {
            Some("nil") => visitor.visit_unit(),
            _ => Err(mismatch("nil", self.0)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Term::List(l) => visitor.visit_seq(Seq::Terms(l.elements.iter())),
            Term::Tuple(t) => visitor.visit_seq(Seq::Terms(t.elements.iter())),
            Term::ByteList(b) => visitor.visit_seq(Seq::Bytes(b.bytes.iter())),
            _ => Err(mismatch("a list", self.0)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Term::Tuple(_) | Term::List(_) | Term::ByteList(_) => self.deserialize_seq(visitor),
            _ => Err(mismatch("a tuple", self.0)),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Term::Map(m) => {
                visitor.visit_map(Entries { pairs: m.map.iter().collect::<Vec<_>>().into_iter(), value: None })
            }
            t => match pairs(t) {
                Some(p) => visitor.visit_map(Entries { pairs: p.into_iter(), value: None }),
                None => Err(mismatch("a map or a keyword list", self.0)),
            },
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self.0 {
            Term::Map(_) => self.deserialize_map(visitor),
            t if pairs(t).is_some() => self.deserialize_map(visitor),
            _ => Err(mismatch(format!("struct {name}"), self.0)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        let (tag, rest): (&Term, &'de [Term]) = match self.0 {
            Term::Atom(_) => (self.0, &[]),
            Term::Tuple(t) if !t.elements.is_empty() && atom_name(&t.elements[0]).is_some() => {
                (&t.elements[0], &t.elements[1..])
            }
            _ => return Err(mismatch(format!("a variant of {name} (an atom or a tagged tuple)"), self.0)),
        };
        let found = atom_name(tag).unwrap_or_default();
        let variant = variants.iter().find(|v| variant_atom(name, v) == found || **v == found);
        match variant {
            Some(v) => visitor.visit_enum(Variant { name: v, rest, term: self.0 }),
            None => Err(mismatch(format!("a variant of {name}"), self.0)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Term::Atom(a) => visitor.visit_borrowed_str(&a.name),
            Term::Binary(b) => match std::str::from_utf8(&b.bytes) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(&b.bytes),
            },
            Term::FixInteger(i) if i.value >= 0 => visitor.visit_u64(i.value as u64),
            _ => Err(mismatch("a field name (an atom or a binary)", self.0)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_unit()
    }
}

/// The elements of a list or a tuple, or the bytes of a byte list.
enum Seq<'de> {
    Terms(std::slice::Iter<'de, Term>),
    Bytes(std::slice::Iter<'de, u8>),
}

impl<'de> de::SeqAccess<'de> for Seq<'de> {
    type Error = SerdeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, SerdeError> {
        match self {
            Seq::Terms(it) => it.next().map(|t| seed.deserialize(Deserializer(t))).transpose(),
            Seq::Bytes(it) => it.next().map(|&b| seed.deserialize(b.into_deserializer())).transpose(),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(match self {
            Seq::Terms(it) => it.len(),
            Seq::Bytes(it) => it.len(),
        })
    }
}

struct Entries<'de> {
    pairs: std::vec::IntoIter<(&'de Term, &'de Term)>,
    value: Option<&'de Term>,
}

impl<'de> de::MapAccess<'de> for Entries<'de> {
    type Error = SerdeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, SerdeError> {
        match self.pairs.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(Deserializer(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, SerdeError> {
        let v = self.value.take().ok_or_else(|| SerdeError::Custom("a map value without a key".into()))?;
        seed.deserialize(Deserializer(v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.pairs.len())
    }
}

/// A variant: its name, and the tuple's elements after the tag.
struct Variant<'de> {
    name: &'static str,
    rest: &'de [Term],
    term: &'de Term,
}

impl<'de> de::EnumAccess<'de> for Variant<'de> {
    type Error = SerdeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), SerdeError> {
        let v = seed.deserialize(de::value::BorrowedStrDeserializer::<SerdeError>::new(self.name))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'de> {
    type Error = SerdeError;

    fn unit_variant(self) -> Result<(), SerdeError> {
        match self.rest {
            [] => Ok(()),
            _ => Err(mismatch(format!("the atom :{}", self.name), self.term)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, SerdeError> {
        match self.rest {
            // `:ok` for `Ok(())`: the data is `nil`.
            [] => seed.deserialize(Deserializer(&NIL)),
            [x] => seed.deserialize(Deserializer(x)),
            _ => Err(mismatch(format!("a 2-tuple tagged {}", self.name), self.term)),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_seq(Seq::Terms(self.rest.iter()))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self.rest {
            [x] => Deserializer(x).deserialize_struct(self.name, fields, visitor),
            _ => Err(mismatch(format!("{{:{}, %{{...}}}}", self.name), self.term)),
        }
    }
}

static NIL: std::sync::LazyLock<Term> = std::sync::LazyLock::new(|| super::ser::atom("nil"));
