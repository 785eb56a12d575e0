//! Oracles for the framing properties: OTP's own algorithms, transcribed from erts, that
//! beamport's framing must agree with. Shared by `tests/framing_props.rs` and the fuzz target
//! `fuzz/fuzz_targets/line.rs` (which includes this file by path).

/// OTP's line buffer (`read_linebuf` and `flush_linebuf` in erts `io.c`), byte by byte, as
/// the oracle for `{line, L}`: the lines it delivers, each with whether it ended in a newline
/// (`eol`) or was cut (`noeol`: at `max` bytes, or at EOF).
pub fn otp_lines(max: usize, input: &[u8]) -> Vec<(bool, Vec<u8>)> {
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
