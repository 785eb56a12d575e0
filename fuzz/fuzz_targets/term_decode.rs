//! `term::decode`: any bytes. It must not panic; what decodes must encode and decode again to
//! the same term; and no input may make it hold more heap than `PER_BYTE` bytes per input
//! byte (per decompressed byte for a compressed term) plus `FIXED`, counted by the global
//! allocator below.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use beamport::term;
use libfuzzer_sys::fuzz_target;

/// As `tests/term_alloc.rs`: a term's `Vec`s hold one 56-byte element per input byte at
/// most; a map's table, at most 2.3 buckets of 113 bytes per 2 bytes its header claims.
const PER_BYTE: usize = 256;
/// A compressed term's zlib state and window.
const FIXED: usize = 256 << 10;

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = NOW.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: the caller's layout goes to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NOW.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The bytes a decode may be charged for: the input, or the decompressed bytes of a
/// compressed term when they are more.
fn charged(bytes: &[u8]) -> usize {
    if bytes.get(1) == Some(&80) && bytes.len() >= 6 {
        let declared = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
        return bytes.len().max(declared.min((bytes.len() - 6) * 1032).min(term::MAX_DECOMPRESSED));
    }
    bytes.len()
}

fuzz_target!(|data: &[u8]| {
    let base = NOW.load(Relaxed);
    PEAK.store(base, Relaxed);
    let decoded = term::decode(data);
    let used = PEAK.load(Relaxed) - base;
    let bound = PER_BYTE * charged(data) + FIXED;
    assert!(used <= bound, "{used} heap bytes for {} input bytes", data.len());
    match decoded {
        Ok(t) => {
            let bytes = term::encode(&t).expect("a decoded term encodes");
            let again = term::decode(&bytes).expect("an encoded term decodes");
            // eetf hashes a map in its iteration order, so a map used as a key may not compare
            // equal to its copy; the iex text sorts map keys.
            assert!(
                again == t || term::iex(&again).to_string() == term::iex(&t).to_string(),
                "{} became {}",
                term::iex(&t),
                term::iex(&again)
            );
            assert_eq!(term::encode(&again).expect("encodes").len(), bytes.len());
        }
        Err(e) => assert!(e.in_compressed || e.offset <= data.len(), "{e} past the end of {} bytes", data.len()),
    }
});
