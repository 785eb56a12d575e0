//! The term codec on the 1 KB map of `beamport bench`'s `term_roundtrip`
//! (`bench/otp/term_roundtrip.escript`): 43 atom keys `key_1` … `key_43`, whose values are by
//! turns an integer, a binary and a small list `[i, i / 3, {tag, i}]`. `decode` and `encode`
//! on their own, and `echo`: what a port program's echo does with each packet, decoding it and
//! encoding the term again into a buffer it reuses.

use std::hint::black_box;

use beamport::term::{self, Atom, Binary, FixInteger, Float, List, Map, Term, Tuple};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The escript's `map_1k()`.
fn map_1k() -> Term {
    let map = (1..=43)
        .map(|i: i32| {
            let key = Term::from(Atom::from(format!("key_{i}")));
            let value = match i % 3 {
                0 => Term::from(FixInteger::from(i * 1_000_003)),
                1 => Term::from(Binary::from(format!("value {i}").into_bytes())),
                _ => Term::from(List::from(vec![
                    Term::from(FixInteger::from(i)),
                    Term::from(Float::try_from(f64::from(i) / 3.0).unwrap()),
                    Term::from(Tuple::from(vec![Term::from(Atom::from("tag")), Term::from(FixInteger::from(i))])),
                ])),
            };
            (key, value)
        })
        .collect();
    Term::from(Map { map })
}

fn bench(c: &mut Criterion) {
    let map = map_1k();
    let bytes = term::encode(&map).unwrap();
    assert_eq!(term::decode(&bytes).unwrap(), map);
    let mut group = c.benchmark_group("term_map_1k");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("decode", |b| b.iter(|| term::decode(black_box(&bytes)).unwrap()));
    let mut out = BytesMut::with_capacity(2 * bytes.len());
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            term::encode_to(black_box(&map), &mut out).unwrap();
        })
    });
    group.bench_function("echo", |b| {
        b.iter(|| {
            let t = term::decode(black_box(&bytes)).unwrap();
            out.clear();
            term::encode_to(&t, &mut out).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
