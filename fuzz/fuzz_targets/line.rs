//! `{line, L}`: arbitrary bytes, split anywhere, against OTP's line buffer.
#![no_main]

mod common;
#[path = "../../tests/oracle/mod.rs"]
mod oracle;

use std::num::NonZeroUsize;

use beamport::framing::{Frame, Framing};
use libfuzzer_sys::fuzz_target;
use oracle::otp_lines;

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
