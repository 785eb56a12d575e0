//! Property tests of `beamport::framing`: round trips, independence from how
//! the input is split into reads, OTP's line buffer as an oracle, and bounded
//! buffers.

use std::num::NonZeroUsize;

use beamport::framing::{encode, Decoder, Frame, Framing, PacketSize};
use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

mod oracle;
use oracle::otp_lines;

/// What a decoder may reserve ahead for a packet body.
const MAX_RESERVE: usize = 64 * 1024;

fn packet_size() -> impl Strategy<Value = PacketSize> {
    prop_oneof![Just(PacketSize::One), Just(PacketSize::Two), Just(PacketSize::Four)]
}

fn line_framing(max: usize) -> Framing {
    Framing::Line(NonZeroUsize::new(max).unwrap())
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![Just(Framing::Stream), packet_size().prop_map(Framing::Packet), (1..40usize).prop_map(line_framing),]
}

/// Bytes rich in LF and CR, and in small packet headers.
fn bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(b'\r'), Just(0u8), Just(1u8)], 0..max_len)
}

/// Feeds `input` to a fresh decoder in reads that end at `splits`, then hits
/// EOF; checks the buffer bounds after every read.
fn feed(framing: Framing, input: &[u8], splits: &[Index]) -> (Vec<Frame>, Decoder) {
    let mut ends: Vec<usize> = splits.iter().map(|i| i.index(input.len() + 1)).collect();
    ends.push(input.len());
    ends.sort_unstable();
    let mut decoder = Decoder::new(framing);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut start = 0;
    for end in ends {
        buf.extend_from_slice(&input[start..end]);
        start = end;
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        if let Framing::Line(max) = framing {
            assert!(buf.len() <= max.get() + 1, "line buffer holds {}", buf.len());
        }
        assert!(buf.capacity() <= 2 * (end + MAX_RESERVE) + 64);
    }
    let mut eof_frames = 0;
    while let Some(frame) = decoder.decode_eof(&mut buf).unwrap() {
        frames.push(frame);
        eof_frames += 1;
        assert!(eof_frames <= input.len(), "decode_eof does not terminate");
    }
    assert!(buf.is_empty());
    (frames, decoder)
}

/// A line's frames: `noeol` chunks of `max` bytes, then `eol` with the rest.
fn line_frames(max: usize, mut line: &[u8]) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    while line.len() > max {
        out.push((false, line[..max].to_vec()));
        line = &line[max..];
    }
    out.push((true, line.to_vec()));
    out
}

fn lines(frames: Vec<Frame>) -> Vec<(bool, Vec<u8>)> {
    frames
        .into_iter()
        .map(|frame| match frame {
            Frame::Line { eol, data } => (eol, data.to_vec()),
            other => panic!("line mode made {other:?}"),
        })
        .collect()
}

proptest! {
    #[test]
    fn packet_round_trip(
        size in packet_size(),
        payloads in vec(vec(any::<u8>(), 0..=300), 0..8),
        splits in vec(any::<Index>(), 0..8),
    ) {
        let framing = Framing::Packet(size);
        let mut wire = BytesMut::new();
        for payload in &payloads {
            let fits = payload.len() as u64 <= size.max_len();
            prop_assert_eq!(encode(framing, payload, &mut wire).is_ok(), fits);
        }
        let expected: Vec<_> = payloads
            .into_iter()
            .filter(|p| p.len() as u64 <= size.max_len())
            .map(|p| Frame::Data(p.into()))
            .collect();
        let (frames, decoder) = feed(framing, &wire, &splits);
        prop_assert_eq!(frames, expected);
        prop_assert_eq!(decoder.truncated(), 0);
    }

    #[test]
    fn line_round_trip(
        max in 1..40usize,
        lines_in in vec((vec(prop_oneof![any::<u8>(), Just(b'\r')], 0..100), any::<bool>()), 0..8),
        splits in vec(any::<Index>(), 0..8),
    ) {
        let framing = line_framing(max);
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        for (mut line, crlf) in lines_in {
            // A line of its own: no LF inside, no CR that would join its end.
            line.retain(|&b| b != b'\n');
            while line.last() == Some(&b'\r') {
                line.pop();
            }
            encode(framing, &line, &mut wire).unwrap();
            encode(framing, if crlf { b"\r\n" } else { b"\n" }, &mut wire).unwrap();
            expected.extend(line_frames(max, &line));
        }
        let (frames, _) = feed(framing, &wire, &splits);
        prop_assert_eq!(lines(frames), expected);
    }

    #[test]
    fn line_is_otp_line_buffer(
        max in 1..12usize,
        input in bytes(300),
        splits in vec(any::<Index>(), 0..8),
    ) {
        let (frames, _) = feed(line_framing(max), &input, &splits);
        prop_assert_eq!(lines(frames), otp_lines(max, &input));
    }

    #[test]
    fn frames_do_not_depend_on_splits(
        framing in framing(),
        input in bytes(600),
        a in vec(any::<Index>(), 0..10),
        b in vec(any::<Index>(), 0..10),
    ) {
        // `feed` also checks that nothing panics, buffers stay bounded and
        // `decode_eof` terminates.
        let (x, dx) = feed(framing, &input, &a);
        let (y, dy) = feed(framing, &input, &b);
        prop_assert_eq!(dx.truncated(), dy.truncated());
        if framing == Framing::Stream {
            let cat = |frames: &[Frame]| frames.iter().flat_map(|f| f.data().to_vec()).collect::<Vec<_>>();
            prop_assert_eq!(cat(&x), input.clone());
            prop_assert_eq!(cat(&y), input);
        } else {
            prop_assert_eq!(x, y);
        }
    }

    #[test]
    fn huge_header_grows_buffer_with_the_bytes(
        len in (1u32 << 20)..=u32::MAX,
        reads in vec(1..100_000usize, 0..12),
    ) {
        let mut decoder = Decoder::new(Framing::Packet(PacketSize::Four));
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        let mut fed = 0;
        prop_assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        for read in reads {
            buf.extend_from_slice(&vec![7; read]);
            fed += read;
            prop_assert_eq!(decoder.decode(&mut buf).unwrap(), None);
            prop_assert_eq!(decoder.wanted(), Some(len as usize - fed));
            prop_assert!(buf.capacity() <= 2 * (fed + MAX_RESERVE) + 64, "capacity {} after {}", buf.capacity(), fed);
        }
        prop_assert_eq!(decoder.decode_eof(&mut buf).unwrap(), None);
        prop_assert_eq!(decoder.truncated(), 4 + fed);
    }
}
