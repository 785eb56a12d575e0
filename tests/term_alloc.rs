//! No input makes `term::decode` allocate more than a fixed multiple of its bytes (of its
//! decompressed bytes for a compressed term), measured with a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use beamport::term::{self, Term};
use proptest::collection::vec;
use proptest::prelude::*;

#[path = "term/mod.rs"]
mod term_support;

/// Heap bytes per input byte a decoded term may take at most. A term's `Vec`s hold at most
/// one 56-byte element per input byte; a map's table is made for the entries its header
/// claims, two bytes of input each at least, in at most 2.3 buckets of 113 bytes an entry.
const PER_BYTE: usize = 256;
/// Heap bytes any decode may take besides: a compressed term's zlib state and window.
const FIXED: usize = 256 << 10;

struct Counting;

thread_local! {
    static NOW: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller's layout goes to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size);
        shrink(layout.size());
        // SAFETY: as `dealloc` for `ptr`, and the new size comes from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn grow(n: usize) {
    let _ = NOW.try_with(|now| {
        now.set(now.get() + n);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now.get())));
    });
}

fn shrink(n: usize) {
    let _ = NOW.try_with(|now| now.set(now.get().saturating_sub(n)));
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most heap `f` held at once, beyond what was held before it ran.
fn peak<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = NOW.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(Cell::get) - base)
}

/// The input a decode may be charged for: its bytes, or a compressed term's decompressed
/// bytes when there are more.
fn charged(bytes: &[u8]) -> usize {
    if bytes.get(1) == Some(&80) && bytes.len() >= 6 {
        let declared = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
        return bytes.len().max(declared.min((bytes.len() - 6) * 1032).min(term::MAX_DECOMPRESSED));
    }
    bytes.len()
}

fn check(bytes: &[u8]) -> usize {
    let (result, used) = peak(|| term::decode(bytes).map(drop));
    let bound = PER_BYTE * charged(bytes) + FIXED;
    assert!(
        used <= bound,
        "{used} bytes for {} input bytes ({result:?}): {:?}",
        bytes.len(),
        &bytes[..bytes.len().min(64)]
    );
    used
}

/// Inputs shaped to cost the most per byte.
fn worst() -> Vec<Vec<u8>> {
    let n = 20_000u32;
    let nils = |tag: &[u8]| [&[131][..], tag, &n.to_be_bytes(), &vec![106; n as usize + 1]].concat();
    let mut map = [&[131, 116][..], &256u32.to_be_bytes()].concat();
    for k in 0..=255u8 {
        map.extend([97, k, 106]);
    }
    let mut nested = vec![131];
    for _ in 0..500 {
        nested.extend([108, 0, 0, 0x4e, 0x20]); // each claims 20 000 elements
    }
    let half = (n / 2).to_be_bytes();
    vec![
        [&[131, 116][..], &half, &vec![106; n as usize + 1]].concat(), // #{[] => [], [] => …}: its table comes first
        nils(&[108]),                                                  // [[], [], …]
        nils(&[105]),                                                  // {[], [], …}
        map,                                                           // #{0 => [], 1 => [], …}
        nested,                                                        // claims that nest
        [&[131, 111][..], &n.to_be_bytes(), &[0], &vec![1; n as usize]].concat(), // a big integer
    ]
}

#[test]
fn decode_allocates_at_most_a_multiple_of_its_input() {
    let mut worst_ratio = 0.0f64;
    for bytes in worst() {
        let used = check(&bytes);
        eprintln!("{:?}…: {} bytes, {used} heap bytes", &bytes[..6], bytes.len());
        worst_ratio = worst_ratio.max(used as f64 / bytes.len() as f64);
    }
    // A zip bomb: 1 MiB of nils, compressed.
    let bomb =
        term::encode_compressed(&Term::from(term::List::from(vec![Term::from(term::List::nil()); 1 << 20]))).unwrap();
    assert!(bomb.len() < 5000, "{}", bomb.len());
    check(&bomb);
    let lie = [&bomb[..2], &[0x7f, 0xff, 0xff, 0xff], &bomb[6..]].concat();
    check(&lie);
    eprintln!("worst: {worst_ratio:.1} heap bytes per input byte");

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let inputs =
        prop_oneof![
            term_support::any_term().prop_map(|t| term::encode(&t).unwrap()),
            term_support::any_term().prop_map(|t| term::encode_compressed(&t).unwrap()),
            vec(prop_oneof![4 => 97..=120u8, 2 => Just(0u8), 2 => Just(255u8), 1 => any::<u8>()], 0..64)
                .prop_map(|b| [&[131][..], &b].concat()),
        ];
    runner
        .run(&inputs, |bytes| {
            check(&bytes);
            Ok(())
        })
        .unwrap();
}
