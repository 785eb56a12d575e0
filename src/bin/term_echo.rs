//! `beamport-term-echo`: the Rust port program of `beamport bench`'s `term_roundtrip`. It reads
//! each `{:packet, 4}` packet on stdin, decodes it as a term, and writes the term back encoded
//! on stdout, until its input ends: the loop of `examples/term_echo`, with mimalloc as its
//! allocator.
//!
//! A decoded term is many small allocations: the 1 KB map of `term_roundtrip` is 101 (a
//! `String` per atom, a `Vec` per binary, list and tuple, the map's table), 71 of them the same
//! size. glibc's malloc keeps 7 freed blocks of a size per thread; the rest of each trip's
//! allocations take its slower paths, and its table's 8 KiB make it consolidate its free
//! lists, on the path from a packet to its reply. mimalloc's per-thread free lists take them
//! all.

use beamport::framing::{Framing, PacketSize};
use beamport::program::Channel;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    let mut channel = Channel::stdio(Framing::Packet(PacketSize::Four))?;
    while let Some(term) = channel.read_term()? {
        channel.write_term(&term)?;
    }
    Ok(())
}
