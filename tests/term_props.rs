//! Property tests of `beamport::term`: what is encoded decodes to the same term, compressed
//! or not, and no input makes the decoder panic.

use beamport::term::{self, DecodeReason, Term};
use proptest::collection::vec;
use proptest::prelude::*;

#[path = "term/mod.rs"]
mod term_support;
use term_support::{any_term, special_terms};

/// Encodings of random terms, then damaged: bytes flipped, cut, inserted.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    (any_term(), vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4), any::<bool>()).prop_map(
        |(t, edits, compressed)| {
            let mut b = if compressed { term::encode_compressed(&t) } else { term::encode(&t) }.unwrap();
            for (at, byte, kind) in edits {
                let i = at.index(b.len());
                match kind {
                    0 => b[i] ^= byte | 1,
                    1 => b.truncate(i.max(1)),
                    _ => b.insert(i, byte),
                }
            }
            b
        },
    )
}

/// Bytes that look like terms: a version byte, then tags and small or huge lengths.
fn termish() -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![4 => 97..=120u8, 2 => Just(0u8), 2 => Just(255u8), 1 => any::<u8>()], 0..64).prop_map(|mut b| {
        b.insert(0, 131);
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_the_same_term(t in any_term()) {
        let bytes = term::encode(&t).unwrap();
        prop_assert_eq!(&term::decode(&bytes).unwrap(), &t);
        let z = term::encode_compressed(&t).unwrap();
        prop_assert_eq!(term::decode(&z).unwrap(), t);
    }

    #[test]
    fn decode_never_panics(bytes in prop_oneof![damaged(), termish(), vec(any::<u8>(), 0..256)]) {
        match term::decode(&bytes) {
            // Whatever decodes, encodes, and decodes again to the same term.
            Ok(t) => prop_assert_eq!(term::decode(&term::encode(&t).unwrap()).unwrap(), t),
            Err(e) if e.in_compressed => {}
            Err(e) => prop_assert!(e.offset <= bytes.len(), "{} past the end of {} bytes", e, bytes.len()),
        }
    }
}

#[test]
fn special_terms_round_trip() {
    for t in special_terms() {
        let bytes = term::encode(&t).unwrap();
        assert_eq!(term::decode(&bytes).unwrap(), t);
        assert_eq!(term::decode(&term::encode_compressed(&t).unwrap()).unwrap(), t);
    }
}

#[test]
fn deeper_than_the_limit_is_an_error() {
    let mut t = Term::from(term::List::nil());
    for _ in 0..=term::MAX_DEPTH {
        t = term_support::tuple(vec![t]);
    }
    assert!(matches!(term::encode(&t), Err(term::EncodeError::TooDeep(_))));
    let mut bytes = vec![131];
    bytes.extend(std::iter::repeat_n([104, 1], term::MAX_DEPTH + 1).flatten());
    bytes.push(106);
    assert_eq!(term::decode(&bytes).unwrap_err().reason, DecodeReason::TooDeep(term::MAX_DEPTH));
}
