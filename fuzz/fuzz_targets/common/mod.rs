//! Shared by the fuzz targets: feed a decoder in chunks and check its bounds.

use beamport::framing::{Decoder, Frame, Framing};
use bytes::BytesMut;

/// What a decoder may reserve ahead for a packet body (`MAX_RESERVE`).
const MAX_RESERVE: usize = 64 * 1024;

/// Feeds `input` to a fresh decoder, split after each of `splits` bytes
/// (taken modulo what is left), then hits EOF. Returns every frame and the
/// decoder. Panics if the buffer outgrows its bound or `decode_eof` does not
/// terminate.
pub fn feed(framing: Framing, input: &[u8], splits: &[u16]) -> (Vec<Frame>, Decoder) {
    let mut decoder = Decoder::new(framing);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = input;
    let mut fed = 0;
    let mut chunks = splits.iter().map(|&s| usize::from(s)).peekable();
    loop {
        let n = match chunks.next() {
            Some(s) => s % (rest.len() + 1),
            None => rest.len(),
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        fed += chunk.len();
        buf.extend_from_slice(chunk);
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        check_bounds(framing, &buf, fed);
        if rest.is_empty() && chunks.peek().is_none() {
            break;
        }
    }
    let mut eof_frames = 0;
    while let Some(frame) = decoder.decode_eof(&mut buf).unwrap() {
        frames.push(frame);
        eof_frames += 1;
        assert!(
            eof_frames <= input.len() + 1,
            "decode_eof does not terminate"
        );
    }
    assert!(buf.is_empty(), "decode_eof left {} bytes", buf.len());
    (frames, decoder)
}

/// After `decode` returned `Ok(None)`: `{line, L}` keeps at most L + 1 bytes,
/// and nobody reserves far beyond the bytes that actually arrived.
fn check_bounds(framing: Framing, buf: &BytesMut, fed: usize) {
    if let Framing::Line(max) = framing {
        assert!(
            buf.len() <= max.get() + 1,
            "line buffer holds {}",
            buf.len()
        );
    }
    assert!(
        buf.capacity() <= 2 * (fed + MAX_RESERVE) + 64,
        "capacity {} after {fed} bytes",
        buf.capacity()
    );
}
