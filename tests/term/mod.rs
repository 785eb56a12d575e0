//! What the term tests share: random terms in the form `term::decode` gives them, and the
//! port programs that echo them.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use beamport::term::num_bigint::BigInt;
use beamport::term::{
    eetf, Atom, BigInteger, Binary, BitBinary, ByteList, ExternalFun, FixInteger, Float, ImproperList, InternalFun,
    List, Map, Reference, Term, Tuple,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Builds an example of the `beamport` crate with the `term` feature, once per test binary,
/// into the profile directory this test runs from; returns its path.
pub fn term_example(name: &'static str) -> PathBuf {
    static BUILT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = std::env::current_exe()
        .ok()
        .and_then(|t| t.parent()?.parent().map(|d| d.join("examples").join(name)))
        .expect("the test binary's directory");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(&name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let profile: &[&str] = if cfg!(debug_assertions) { &[] } else { &["--release"] };
        let st = Command::new(cargo)
            .args(["build", "--quiet", "-p", "beamport", "--features", "term", "--example", name])
            .args(profile)
            .current_dir(dir)
            .status()
            .expect("run cargo build --example");
        assert!(st.success(), "cargo build --example {name} failed");
        built.push(name);
    }
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

/// A file of `tests/term/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/term").join(name)
}

pub fn atom(s: &str) -> Term {
    Term::from(Atom::from(s))
}

pub fn tuple(v: Vec<Term>) -> Term {
    Term::from(Tuple::from(v))
}

fn is_list(t: &Term) -> bool {
    matches!(t, Term::List(_) | Term::ByteList(_) | Term::ImproperList(_))
}

fn byte(t: &Term) -> bool {
    matches!(t, Term::FixInteger(i) if (0..=255).contains(&i.value))
}

/// Atom names: ASCII, Latin-1 (which OTP 25 writes as `ATOM_EXT`), other UTF-8, empty, and
/// the longest the VM takes (255 characters, 765 bytes).
pub fn atom_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-zA-Z0-9_@]{0,12}",
        1 => "[a-zA-Z éüßÆ]{0,8}",
        1 => "[a-z€日本語😀]{1,6}",
        1 => Just(String::new()),
        1 => Just("€".repeat(255)),
    ]
}

fn node() -> impl Strategy<Value = Atom> {
    prop_oneof![Just("nonode@nohost"), Just("a@b"), Just("node@host.example")].prop_map(Atom::from)
}

pub fn pid() -> impl Strategy<Value = eetf::Pid> {
    (node(), 0..1u32 << 15, 0..8192u32, 0..4u32).prop_map(|(node, id, serial, creation)| eetf::Pid {
        node,
        id,
        serial,
        creation,
    })
}

fn big() -> impl Strategy<Value = BigInt> {
    prop_oneof![
        (any::<i64>()).prop_map(BigInt::from),
        (any::<bool>(), vec(any::<u8>(), 0..40))
            .prop_map(|(neg, digits)| BigInt::from_bytes_le(num_sign(neg), &digits)),
        (any::<bool>(), vec(any::<u8>(), 256..300))
            .prop_map(|(neg, digits)| BigInt::from_bytes_le(num_sign(neg), &digits)),
    ]
    .prop_filter("outside i32", |v| i32::try_from(v).is_err())
}

fn num_sign(neg: bool) -> beamport::term::num_bigint::Sign {
    if neg {
        beamport::term::num_bigint::Sign::Minus
    } else {
        beamport::term::num_bigint::Sign::Plus
    }
}

/// A term without inner terms, in canonical form.
pub fn leaf() -> impl Strategy<Value = Term> {
    prop_oneof![
        3 => atom_name().prop_map(|n| atom(&n)),
        3 => any::<i32>().prop_map(|i| Term::from(FixInteger::from(i))),
        2 => (0..=255i32).prop_map(|i| Term::from(FixInteger::from(i))),
        2 => big().prop_map(|value| Term::from(BigInteger { value })),
        2 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|value| Term::from(Float { value })),
        2 => vec(any::<u8>(), 0..40).prop_map(|b| Term::from(Binary::from(b))),
        1 => (vec(any::<u8>(), 1..10), 1..8u8).prop_map(|(mut b, bits)| {
            let last = b.len() - 1;
            b[last] &= (1u8 << bits) - 1;
            Term::from(BitBinary::from((b, bits)))
        }),
        2 => vec(any::<u8>(), 1..30).prop_map(|b| Term::from(ByteList::from(b))),
        1 => Just(Term::from(List::nil())),
        1 => pid().prop_map(Term::from),
        1 => (node(), 0..1u64 << 28, 0..4u32).prop_map(|(node, id, creation)| Term::from(eetf::Port { node, id, creation })),
        // The VM refuses a local reference whose first word has more than 18 bits.
        1 => (node(), 0..1u32 << 18, any::<[u32; 2]>(), 0..4u32)
            .prop_map(|(node, w0, w, creation)| Term::from(Reference { node, id: vec![w0, w[0], w[1]], creation })),
        1 => (atom_name(), atom_name(), any::<u8>()).prop_map(|(m, f, arity)| {
            Term::from(ExternalFun { module: Atom::from(m), function: Atom::from(f), arity })
        }),
    ]
}

/// A map key: a leaf or a tuple of leaves. (No maps: eetf hashes a map in its own iteration
/// order, so two equal maps may hash apart and a map key then finds no match.)
fn key() -> impl Strategy<Value = Term> {
    prop_oneof![3 => leaf(), 1 => vec(leaf(), 0..3).prop_map(tuple)]
}

/// Any term, in the form `term::decode` gives it: a list of bytes is a `ByteList`, an
/// integer that fits an `i32` is a `FixInteger`, a bitstring has 1 to 7 bits in its last
/// byte, an improper list's tail is not a list.
pub fn any_term() -> impl Strategy<Value = Term> {
    leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            2 => vec(inner.clone(), 0..8).prop_map(tuple),
            2 => vec(inner.clone(), 1..8)
                .prop_filter("not all bytes", |v| !v.iter().all(byte))
                .prop_map(|v| Term::from(List::from(v))),
            1 => (vec(inner.clone(), 1..4), inner.clone().prop_filter("not a list", |t| !is_list(t)))
                .prop_map(|(elements, last)| Term::from(ImproperList::from((elements, last)))),
            2 => vec((key(), inner.clone()), 0..8)
                .prop_map(|kv| Term::from(Map::from(kv.into_iter().collect::<HashMap<_, _>>()))),
            1 => (atom_name(), any::<u8>(), pid(), vec(inner, 0..3), any::<u32>(), any::<[u8; 16]>(), any::<i32>(), any::<i32>())
                .prop_map(|(m, arity, pid, free_vars, index, uniq, old_index, old_uniq)| {
                    Term::from(InternalFun::New { module: Atom::from(m), arity, pid, free_vars, index, uniq, old_index, old_uniq })
                }),
        ]
    })
}

/// Terms the generator above rarely makes: deep, long and large ones.
pub fn special_terms() -> Vec<Term> {
    let mut deep_list = Term::from(List::nil());
    let mut deep_tuple = atom("bottom");
    let mut deep_map = atom("bottom");
    for i in 0..beamport::term::MAX_DEPTH {
        deep_list = Term::from(List::from(vec![deep_list, atom("x")]));
        deep_tuple = tuple(vec![Term::from(FixInteger::from(i as i32)), deep_tuple]);
        deep_map = Term::from(Map::from([(atom("k"), deep_map)]));
    }
    vec![
        deep_list,
        deep_tuple,
        deep_map,
        Term::from(Binary::from(vec![0xab; 1 << 20])),
        Term::from(ByteList::from(vec![7; 65_535])),
        Term::from(List::from(vec![Term::from(FixInteger::from(7)); 70_000])),
        tuple((0..300).map(|i| Term::from(FixInteger::from(i))).collect()),
        Term::from(BigInteger { value: BigInt::from(-7) << 5000usize }),
        Term::from(Map::from(
            (0..100).map(|i| (Term::from(FixInteger::from(i)), atom("v"))).collect::<HashMap<_, _>>(),
        )),
        atom(&"é".repeat(255)),
    ]
}

/// Whether two terms are the same Erlang term. eetf hashes a map in its own iteration order,
/// so a map used as a map key may not compare equal to its copy; the iex text sorts map keys.
pub fn same(a: &Term, b: &Term) -> bool {
    a == b
        || (beamport::term::iex(a).to_string() == beamport::term::iex(b).to_string()
            && beamport::term::encode(a).map(|e| e.len()).ok() == beamport::term::encode(b).map(|e| e.len()).ok())
}
