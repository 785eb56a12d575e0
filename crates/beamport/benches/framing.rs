//! Decoder throughput. `read+decode` feeds the input in 64 KiB reads (OTP's
//! read size; `extend_from_slice` stands in for `read(2)`) and decodes after
//! each, as a port's reader does. `decode` splits frames off a buffer that
//! already holds the whole input, which is the decoder's own cost.

use std::hint::black_box;
use std::num::NonZeroUsize;

use beamport::framing::{encode, Decoder, Framing, PacketSize};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const READ_SIZE: usize = 64 * 1024;
/// Bytes of input per iteration.
const INPUT_SIZE: usize = 4 << 20;

/// `INPUT_SIZE` bytes or so of `frame_len`-byte frames.
fn packets(size: PacketSize, frame_len: usize) -> Vec<u8> {
    let framing = Framing::Packet(size);
    let payload: Vec<u8> = (0..frame_len).map(|i| i as u8).collect();
    let mut wire = BytesMut::new();
    while wire.len() < INPUT_SIZE {
        encode(framing, &payload, &mut wire).unwrap();
    }
    wire.to_vec()
}

/// 80-byte lines: 79 bytes and an LF.
fn lines() -> Vec<u8> {
    let line: Vec<u8> = (0..79u8).map(|i| b' ' + i % 90).chain([b'\n']).collect();
    line.repeat(INPUT_SIZE / line.len())
}

fn read_and_decode(framing: Framing, input: &[u8]) -> usize {
    let mut decoder = Decoder::new(framing);
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut frames = 0;
    for read in input.chunks(READ_SIZE) {
        buf.extend_from_slice(read);
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            black_box(frame);
            frames += 1;
        }
    }
    frames
}

fn decode_all(framing: Framing, mut buf: BytesMut) -> usize {
    let mut decoder = Decoder::new(framing);
    let mut frames = 0;
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        black_box(frame);
        frames += 1;
    }
    frames
}

fn bench(c: &mut Criterion) {
    let line = Framing::Line(NonZeroUsize::new(1024).unwrap());
    let cases = [
        ("packet4_64KiB", Framing::Packet(PacketSize::Four), packets(PacketSize::Four, 64 * 1024)),
        ("packet2_4KiB", Framing::Packet(PacketSize::Two), packets(PacketSize::Two, 4096)),
        ("packet2_64KiB", Framing::Packet(PacketSize::Two), packets(PacketSize::Two, 65_535)),
        ("packet1_255B", Framing::Packet(PacketSize::One), packets(PacketSize::One, 255)),
        ("line1024_80B", line, lines()),
        ("stream", Framing::Stream, lines()),
    ];
    let mut group = c.benchmark_group("read+decode");
    for (name, framing, input) in &cases {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(*name, |b| b.iter(|| read_and_decode(*framing, input)));
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    for (name, framing, input) in &cases {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(*name, |b| {
            b.iter_batched(|| BytesMut::from(&input[..]), |buf| decode_all(*framing, buf), BatchSize::LargeInput)
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
