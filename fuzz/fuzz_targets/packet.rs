//! `{packet, N}`: arbitrary bytes, split anywhere.
#![no_main]

mod common;

use beamport::framing::{encode, Frame, Framing, PacketSize};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, Vec<u16>, &[u8])| {
    let (n, splits, bytes) = input;
    let size = [PacketSize::One, PacketSize::Two, PacketSize::Four][usize::from(n % 3)];
    let framing = Framing::Packet(size);
    let (frames, decoder) = common::feed(framing, bytes, &splits);
    let (whole, _) = common::feed(framing, bytes, &[]);
    assert_eq!(frames, whole, "frames depend on the split");
    // Encoding the frames again gives back the input, less what was dropped.
    let mut wire = BytesMut::new();
    for frame in &frames {
        let Frame::Data(data) = frame else {
            panic!("packet mode made {frame:?}")
        };
        encode(framing, data, &mut wire).unwrap();
    }
    assert_eq!(wire.len() + decoder.truncated(), bytes.len());
    assert_eq!(&wire[..], &bytes[..wire.len()]);
});
