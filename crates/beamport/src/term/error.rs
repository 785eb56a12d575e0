//! What can go wrong with a term: bytes that do not decode, terms that cannot be encoded,
//! and the host side's calls.

use bytes::Bytes;

use crate::{Exited, Message, PortError};

/// Bytes that did not decode as a term: where, and why.
///
/// `offset` counts bytes from the start of the input, or, for a compressed term
/// (`term_to_binary(t, [:compressed])`), from the start of its decompressed bytes
/// (`in_compressed` is then true).
///
/// # Examples
///
/// ```
/// use beamport::term::{self, DecodeReason};
///
/// // A list header that claims 4 G elements, in a 7-byte input: an error, not an allocation.
/// let err = term::decode(&[131, 108, 0xff, 0xff, 0xff, 0xff, 106]).unwrap_err();
/// assert_eq!(err.offset, 2); // its length field
/// assert!(matches!(err.reason, DecodeReason::TooLong { claimed: 4294967295, .. }));
/// assert_eq!(err.to_string(), "at byte 2: a list claims 4294967295 elements, more than the 0 bytes left can hold");
///
/// let err = term::decode(&[131, 104, 2, 97, 1]).unwrap_err(); // {1, ...: one element missing
/// assert_eq!((err.offset, err.to_string().as_str()), (5, "at byte 5: the input ends inside a tag (1 more bytes needed)"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}{}: {reason}", if *.in_compressed { " of the decompressed term" } else { "" })]
pub struct DecodeError {
    /// Where the faulty part starts.
    pub offset: usize,
    /// Whether `offset` counts in the decompressed bytes of a compressed term.
    pub in_compressed: bool,
    /// What is wrong there.
    pub reason: DecodeReason,
}

/// Why bytes did not decode as a term (see [`DecodeError`]).
///
/// # Examples
///
/// ```
/// use beamport::term::{self, DecodeReason};
/// let reason = |bytes: &[u8]| term::decode(bytes).unwrap_err().reason;
/// assert_eq!(reason(&[130, 106]), DecodeReason::Version(130));
/// assert_eq!(reason(&[131, 68]), DecodeReason::DistributionOnly(68));
/// assert_eq!(reason(&[131, 116, 0, 0, 0, 2, 106, 106, 106, 106]), DecodeReason::DuplicateKey); // #{[] => [], [] => []}
/// assert_eq!(reason(&[131, 77, 0, 0, 0, 1, 0, 255]), DecodeReason::BitSize { len: 1, bits: 0 });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeReason {
    /// The first byte is not 131, the format's version.
    #[error("the version byte is {0}, not 131")]
    Version(u8),
    /// A tag this decoder does not know.
    #[error("unknown tag {0}")]
    UnknownTag(u8),
    /// A tag of the distribution protocol (a distribution header or an atom cache
    /// reference), which `binary_to_term` does not accept either.
    #[error("tag {0} belongs to the distribution protocol, not to a term")]
    DistributionOnly(u8),
    /// A compressed term (tag 80) anywhere but at the top.
    #[error("a compressed term inside a term")]
    NestedCompression,
    /// The input ends inside `what`.
    #[error("the input ends inside {what} ({needed} more bytes needed)")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// How many bytes were missing.
        needed: usize,
    },
    /// A length field claims more than the rest of the input can hold (each element takes at
    /// least one byte): nothing is allocated for it.
    #[error("{what} claims {claimed} {unit}, more than the {left} bytes left can hold")]
    TooLong {
        /// What claims it: `"a list"`, `"a binary"`…
        what: &'static str,
        /// The claimed count.
        claimed: u64,
        /// `"elements"`, `"bytes"`…
        unit: &'static str,
        /// The bytes left, less those that elements already announced will need.
        left: usize,
    },
    /// Nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    #[error("nested more than {0} levels deep")]
    TooDeep(usize),
    /// A UTF-8 atom whose bytes are not UTF-8.
    #[error("an atom's name is not valid UTF-8")]
    AtomNotUtf8,
    /// An atom of more than 255 characters (the VM's limit).
    #[error("an atom of {0} characters; at most 255")]
    AtomTooLong(usize),
    /// A field holds the wrong kind of term: a pid's node that is not an atom, say.
    #[error("{what} must be {expected}")]
    Expected {
        /// The field.
        what: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A bitstring whose last byte holds no bits or more than 8 (or an empty one that
    /// claims some).
    #[error("a bitstring of {len} bytes with {bits} bits in its last byte")]
    BitSize {
        /// Its length in bytes.
        len: u32,
        /// The bits it claims in its last byte.
        bits: u8,
    },
    /// A big integer's sign byte is neither 0 nor 1.
    #[error("an integer's sign byte is {0}; 0 or 1 expected")]
    Sign(u8),
    /// An infinite or NaN float, which the VM has no term for.
    #[error("a float that is not finite")]
    NonFinite,
    /// An old-style float whose text is not a number.
    #[error("float text {0:?} is not a number")]
    FloatText(String),
    /// A map with the same key twice (`binary_to_term` refuses it too).
    #[error("a map key appears twice")]
    DuplicateKey,
    /// A compressed term whose declared size is more than the caller allows, or than zlib
    /// can make of the bytes that follow (1032 per byte).
    #[error("a compressed term declares {declared} bytes, more than the {limit} allowed")]
    CompressedTooLarge {
        /// The declared size.
        declared: u32,
        /// The smaller of the caller's limit and 1032 times the compressed bytes.
        limit: u64,
    },
    /// A compressed term whose data does not decompress to its declared size.
    #[error("a compressed term declares {declared} bytes but holds {}", if *.more { "more".to_string() } else { .found.to_string() })]
    CompressedSize {
        /// The declared size.
        declared: u32,
        /// The size found (when less).
        found: usize,
        /// Whether there was more than declared.
        more: bool,
    },
    /// A compressed term whose data is not a valid zlib stream.
    #[error("a compressed term's data is not valid zlib: {0}")]
    Zlib(String),
}

/// A term that cannot be encoded: it has no form in the External Term Format or the VM
/// would not accept it.
///
/// # Examples
///
/// ```
/// use beamport::term::{self, Atom, EncodeError, Float, Term};
/// let long = Term::from(Atom::from("a".repeat(256)));
/// assert_eq!(term::encode(&long).unwrap_err(), EncodeError::AtomTooLong(256));
/// let nan = Term::from(Float { value: f64::NAN });
/// assert_eq!(term::encode(&nan).unwrap_err().to_string(), "NaN is not a finite float");
/// ```
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An atom of more than 255 characters.
    #[error("an atom of {0} characters; at most 255")]
    AtomTooLong(usize),
    /// NaN or an infinity.
    #[error("{0} is not a finite float")]
    NonFinite(f64),
    /// A bitstring with no bits or more than 8 in its last byte.
    #[error("a bitstring with {0} bits in its last byte; 1 to 8 expected")]
    BitSize(u8),
    /// More elements or bytes than a length field holds.
    #[error("{what} of {len} elements or bytes is more than the format can hold")]
    TooLong {
        /// What.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// Nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH), which the decoder would refuse.
    #[error("nested more than {0} levels deep")]
    TooDeep(usize),
}

/// Why a term could not be sent to or taken from a port.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::term::{self, Error};
/// use beamport::{process, Name, Opt, Port};
///
/// let me = process::current();
/// let port = Port::open(Name::spawn("printf '\\0\\0\\0\\1x'"), [Opt::Binary, Opt::Packet(4)]).unwrap();
/// match me.receive_term(&port) {
///     Err(Error::Decode { error, data }) => {
///         assert_eq!(&data[..], b"x"); // the packet, kept
///         assert_eq!(error.to_string(), "at byte 0: the version byte is 120, not 131");
///     }
///     other => panic!("{other:?}"),
/// }
/// let _ = port.close();
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The term cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A packet did not decode; it is taken, and kept here.
    #[error("{error}")]
    Decode {
        /// Why.
        error: DecodeError,
        /// The packet.
        data: Bytes,
    },
    /// The port refused the command.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The receiving process is dead.
    #[error(transparent)]
    Exited(#[from] Exited),
    /// The port sent something other than data (`:closed`, `{:exit_status, n}`, `:eof`,
    /// or its `{:EXIT, port, reason}`); the message is taken, and kept here.
    #[error("the port sent {0:?}, not data")]
    NotData(Message),
}
