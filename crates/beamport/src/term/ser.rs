//! Rust values to terms, through serde (the mapping is in the module's docs).

use std::collections::HashMap;

use eetf::{Atom, BigInteger, Binary, FixInteger, Float, List, Map, Term, Tuple};
use num_bigint::BigInt;
use serde::ser::{self, Serialize};

/// Why a value could not be turned into a term, or a term into a value.
///
/// # Examples
///
/// ```
/// use beamport::term::{self, SerdeError};
/// let err = term::from_term::<u8>(&term::parse("300").unwrap()).unwrap_err();
/// assert_eq!(err, SerdeError::Mismatch { expected: "u8".into(), found: "300".into() });
/// assert_eq!(err.to_string(), "expected u8, found 300");
/// assert!(term::to_term(&f64::NAN).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerdeError {
    /// The term is not of the shape the type needs; `found` is the term as iex prints it
    /// (shortened).
    #[error("expected {expected}, found {found}")]
    Mismatch {
        /// What the type needs.
        expected: String,
        /// What the term is.
        found: String,
    },
    /// Any other error, from serde or from the type's own code.
    #[error("{0}")]
    Custom(String),
}

impl ser::Error for SerdeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SerdeError::Custom(msg.to_string())
    }
}

/// A Rust value as a term, in Elixir's usual shapes (see the [module docs](super)).
///
/// # Errors
///
/// [`SerdeError::Custom`] for a float that is not finite, or an error of the value's own
/// `Serialize`.
///
/// # Examples
///
/// ```
/// use serde::Serialize;
/// use beamport::term;
///
/// #[derive(Serialize)]
/// struct User { name: String, admin: bool, groups: Vec<u32> }
///
/// let u = User { name: "ada".into(), admin: false, groups: vec![1, 1000] };
/// let t = term::to_term(&u).unwrap();
/// assert_eq!(term::iex(&t).to_string(), r#"%{admin: false, groups: [1, 1000], name: "ada"}"#);
/// ```
pub fn to_term<T: Serialize + ?Sized>(value: &T) -> Result<Term, SerdeError> {
    value.serialize(Serializer)
}

pub(super) fn atom(name: &str) -> Term {
    Term::from(Atom::from(name))
}

/// The atom that names a variant: snake case (`NotFound` → `not_found`), except a name with
/// no lowercase letter, which stays as it is (`EXIT`); `Result::Err` is `error`.
pub(super) fn variant_atom(enum_name: &str, variant: &str) -> String {
    if enum_name == "Result" && variant == "Err" {
        "error".to_string()
    } else if variant.chars().any(char::is_lowercase) {
        heck::ToSnakeCase::to_snake_case(variant)
    } else {
        variant.to_string()
    }
}

pub(super) fn integer(v: impl Into<BigInt>) -> Term {
    let v = v.into();
    match i32::try_from(&v) {
        Ok(i) => Term::from(FixInteger::from(i)),
        Err(_) => Term::from(BigInteger { value: v }),
    }
}

fn is_nil(t: &Term) -> bool {
    matches!(t, Term::Atom(a) if a.name == "nil")
}

struct Serializer;

/// Collects the elements of a list, a tuple or a tagged tuple.
struct Elements {
    elements: Vec<Term>,
    tuple: bool,
}

impl Elements {
    fn end(self) -> Term {
        if self.tuple {
            Term::from(Tuple::from(self.elements))
        } else {
            Term::from(List::from(self.elements))
        }
    }
}

/// Collects a map, or a struct's fields (as a map with atom keys), optionally tagged.
struct Entries {
    map: HashMap<Term, Term>,
    key: Option<Term>,
    tag: Option<String>,
}

impl Entries {
    fn end(self) -> Term {
        let map = Term::from(Map::from(self.map));
        match self.tag {
            Some(tag) => Term::from(Tuple::from(vec![atom(&tag), map])),
            None => map,
        }
    }
}

impl ser::Serializer for Serializer {
    type Ok = Term;
    type Error = SerdeError;
    type SerializeSeq = Elements;
    type SerializeTuple = Elements;
    type SerializeTupleStruct = Elements;
    type SerializeTupleVariant = Elements;
    type SerializeMap = Entries;
    type SerializeStruct = Entries;
    type SerializeStructVariant = Entries;

    fn serialize_bool(self, v: bool) -> Result<Term, SerdeError> {
        Ok(atom(if v { "true" } else { "false" }))
    }
    fn serialize_i8(self, v: i8) -> Result<Term, SerdeError> {
        Ok(integer(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Term, SerdeError> {
        Ok(integer(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Term, SerdeError> {
        Ok(integer(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Term, SerdeError> {
        Ok(integer(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Term, SerdeError> {
        Ok(integer(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Term, SerdeError> {
        Ok(integer(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Term, SerdeError> {
        Ok(integer(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Term, SerdeError> {
        Ok(integer(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Term, SerdeError> {
        Ok(integer(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Term, SerdeError> {
        Ok(integer(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Term, SerdeError> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Term, SerdeError> {
        if v.is_finite() {
            Ok(Term::from(Float { value: v }))
        } else {
            Err(SerdeError::Custom(format!("{v} is not a finite float: the VM has no term for it")))
        }
    }
    fn serialize_char(self, v: char) -> Result<Term, SerdeError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<Term, SerdeError> {
        Ok(Term::from(Binary::from(v.as_bytes())))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Term, SerdeError> {
        Ok(Term::from(Binary::from(v)))
    }
    fn serialize_none(self) -> Result<Term, SerdeError> {
        Ok(atom("nil"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Term, SerdeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Term, SerdeError> {
        Ok(atom("nil"))
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Term, SerdeError> {
        Ok(atom("nil"))
    }
    fn serialize_unit_variant(self, name: &'static str, _i: u32, variant: &'static str) -> Result<Term, SerdeError> {
        Ok(atom(&variant_atom(name, variant)))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Term, SerdeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _i: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Term, SerdeError> {
        let tag = atom(&variant_atom(name, variant));
        let value = value.serialize(Serializer)?;
        Ok(if is_nil(&value) { tag } else { Term::from(Tuple::from(vec![tag, value])) })
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Elements, SerdeError> {
        Ok(Elements { elements: Vec::with_capacity(len.unwrap_or(0)), tuple: false })
    }
    fn serialize_tuple(self, len: usize) -> Result<Elements, SerdeError> {
        Ok(Elements { elements: Vec::with_capacity(len), tuple: true })
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Elements, SerdeError> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _i: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Elements, SerdeError> {
        let mut elements = Vec::with_capacity(len + 1);
        elements.push(atom(&variant_atom(name, variant)));
        Ok(Elements { elements, tuple: true })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Entries, SerdeError> {
        Ok(Entries { map: HashMap::new(), key: None, tag: None })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Entries, SerdeError> {
        Ok(Entries { map: HashMap::new(), key: None, tag: None })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Entries, SerdeError> {
        Ok(Entries { map: HashMap::new(), key: None, tag: Some(variant_atom(name, variant)) })
    }
}

impl ser::SerializeSeq for Elements {
    type Ok = Term;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.elements.push(value.serialize(Serializer)?);
        Ok(())
    }
    fn end(self) -> Result<Term, SerdeError> {
        Ok(Elements::end(self))
    }
}

impl ser::SerializeTuple for Elements {
    type Ok = Term;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Term, SerdeError> {
        Ok(Elements::end(self))
    }
}

impl ser::SerializeTupleStruct for Elements {
    type Ok = Term;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Term, SerdeError> {
        Ok(Elements::end(self))
    }
}

impl ser::SerializeTupleVariant for Elements {
    type Ok = Term;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Term, SerdeError> {
        Ok(Elements::end(self))
    }
}

impl ser::SerializeMap for Entries {
    type Ok = Term;
    type Error = SerdeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerdeError> {
        self.key = Some(key.serialize(Serializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        let key = self.key.take().ok_or_else(|| SerdeError::Custom("a map value without a key".into()))?;
        self.map.insert(key, value.serialize(Serializer)?);
        Ok(())
    }
    fn end(self) -> Result<Term, SerdeError> {
        Ok(Entries::end(self))
    }
}

impl ser::SerializeStruct for Entries {
    type Ok = Term;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), SerdeError> {
        self.map.insert(atom(key), value.serialize(Serializer)?);
        Ok(())
    }
    fn end(self) -> Result<Term, SerdeError> {
        Ok(Entries::end(self))
    }
}

impl ser::SerializeStructVariant for Entries {
    type Ok = Term;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), SerdeError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<Term, SerdeError> {
        Ok(Entries::end(self))
    }
}
