//! Every framing: the frames of a byte stream don't depend on how it is split
//! into reads (for `stream`, the bytes don't).
#![no_main]

mod common;

use std::num::NonZeroUsize;

use beamport::framing::{Frame, Framing, PacketSize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, Vec<u16>, Vec<u16>, &[u8])| {
    let (mode, a, b, bytes) = input;
    let framing = match mode % 5 {
        0 => Framing::Stream,
        1 => Framing::Packet(PacketSize::One),
        2 => Framing::Packet(PacketSize::Two),
        3 => Framing::Packet(PacketSize::Four),
        _ => Framing::Line(NonZeroUsize::new(1 + usize::from(mode >> 3)).unwrap()),
    };
    let (x, _) = common::feed(framing, bytes, &a);
    let (y, _) = common::feed(framing, bytes, &b);
    if framing == Framing::Stream {
        assert!(x
            .iter()
            .chain(&y)
            .all(|f| matches!(f, Frame::Data(d) if !d.is_empty())));
        let cat = |frames: Vec<Frame>| {
            frames
                .iter()
                .flat_map(|f| f.data().to_vec())
                .collect::<Vec<u8>>()
        };
        assert_eq!(cat(x), bytes);
        assert_eq!(cat(y), bytes);
    } else {
        assert_eq!(x, y);
    }
});
