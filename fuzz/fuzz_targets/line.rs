//! `{line, L}`: arbitrary bytes, split anywhere, against OTP's line buffer.
#![no_main]

mod common;

use std::num::NonZeroUsize;

use beamport::framing::{Frame, Framing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, Vec<u16>, &[u8])| {
    let (l, splits, bytes) = input;
    // Mostly short L, so that long lines and CRs at the edge are common.
    let max = if l & 0x80 == 0 {
        1 + usize::from(l % 8)
    } else {
        usize::from(l) * 8
    };
    let framing = Framing::Line(NonZeroUsize::new(max).unwrap());
    let (frames, _) = common::feed(framing, bytes, &splits);
    let got: Vec<(bool, Vec<u8>)> = frames
        .into_iter()
        .map(|frame| match frame {
            Frame::Line { eol, data } => {
                assert!(data.len() <= max, "{} bytes in {{line, {max}}}", data.len());
                (eol, data.to_vec())
            }
            other => panic!("line mode made {other:?}"),
        })
        .collect();
    assert_eq!(got, otp_lines(max, bytes));
});

/// OTP's line buffer (`read_linebuf` and `flush_linebuf` in erts `io.c`),
/// byte by byte, as the oracle for `{line, L}`. Kept in step with the copy
/// in `tests/framing_props.rs`.
fn otp_lines(max: usize, input: &[u8]) -> Vec<(bool, Vec<u8>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Main,
        Full,
        CrInside,
        CrAfter,
    }
    use State::*;
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut state = Main;
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        if c == b'\n' {
            out.push((true, std::mem::take(&mut line)));
            state = Main;
            i += 1;
            continue;
        }
        match state {
            Main if line.len() == max => state = Full,
            Main if c == b'\r' => {
                state = CrInside;
                i += 1;
            }
            Main => {
                line.push(c);
                i += 1;
            }
            Full if c == b'\r' => {
                state = CrAfter;
                i += 1;
            }
            Full => {
                out.push((false, std::mem::take(&mut line)));
                state = Main;
            }
            CrInside => {
                line.push(b'\r');
                state = Main;
            }
            CrAfter => {
                out.push((false, std::mem::take(&mut line)));
                state = CrInside;
            }
        }
    }
    // EOF: flush until empty.
    loop {
        match state {
            CrAfter => {
                out.push((false, std::mem::take(&mut line)));
                state = CrInside;
                continue;
            }
            CrInside => line.push(b'\r'),
            Main | Full => {}
        }
        state = Main;
        if line.is_empty() {
            break;
        }
        out.push((false, std::mem::take(&mut line)));
    }
    out
}
