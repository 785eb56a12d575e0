//! Input from the program: reading its socket into reused buffers, framing, delivering
//! `{:data, ...}` to the owner in order, EOF, and the read window (child → host
//! backpressure, which OTP lacks): past the window, the port stops reading until the owner
//! takes its messages.
//!
//! What the host holds for a port's input is bounded by its options: the read window (each
//! message counted with [`MESSAGE_COST`], so that empty frames count too) and the frame that
//! fills it, plus what waits in the read buffer: the rest of the read that filled the window,
//! and an incomplete frame — at most `{:packet_size, n}` and its header, or `{:line, l}`'s
//! L + 1 bytes.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use bytes::BytesMut;

use super::{errno_name, After, Phase, Port, State};
use crate::engine;
use crate::framing::{Frame, FrameError};
use crate::message::{Data, ExitStatus, Message, PortMsg, Reason};
use crate::process::{self, Pid};
use crate::sys;

/// Bytes asked of each `read`: one message in stream mode.
const READ_SIZE: usize = 256 * 1024;

/// What a data message costs the read window beyond its bytes: an empty packet or line is a
/// message in a mailbox all the same.
const MESSAGE_COST: usize = std::mem::size_of::<Message>();

/// The share of the read window a data message of `len` bytes takes.
fn window_cost(len: usize) -> usize {
    len + MESSAGE_COST
}

fn frame_to_data(frame: Frame, list: bool) -> Data {
    match frame {
        Frame::Data(bytes) => Data { bytes, line: None, list },
        Frame::Line { eol, data } => Data { bytes: data, line: Some(eol), list },
    }
}

impl Port {
    /// Called by the engine when the socket has input (or EOF).
    pub(crate) fn on_readable(&self, shared: &mut BytesMut) {
        let after = {
            let mut st = self.lock();
            self.read_input(&mut st, shared, false)
        };
        after.run(self);
    }

    pub(super) fn window_full(&self) -> bool {
        self.0.settings.read_window.is_some_and(|w| self.0.unread.load(Ordering::SeqCst) >= w)
    }

    /// Reads until `WouldBlock` (the reactor's sockets are edge-triggered), or with
    /// `short_ok` until a read returns less than asked (a direct poll is level-triggered, so
    /// what is left shows up at the next poll; this saves a read per reply).
    pub(super) fn read_input(&self, st: &mut State, shared: &mut BytesMut, short_ok: bool) -> After {
        let mut after = After::default();
        if st.phase != Phase::Open || st.read_eof || !self.0.settings.reads {
            return after;
        }
        loop {
            // Frames a read left when it filled the window go out first, as far as it has room.
            if !st.rbuf.is_empty() && !self.window_full() && !self.deliver_input(st, &mut after) {
                return after;
            }
            if self.window_full() {
                // Paused, then checked again: `input_taken` empties the window, then looks at
                // the flag (both `SeqCst`), so one of the two sees the other and reading resumes.
                self.0.read_paused.store(true, Ordering::SeqCst);
                if self.window_full() {
                    return after;
                }
                self.0.read_paused.store(false, Ordering::SeqCst);
                continue;
            }
            let Some(fd) = st.fd.as_ref() else { return after };
            let want = st.decoder.wanted().unwrap_or(0).clamp(READ_SIZE, 1 << 20);
            let own = !st.rbuf.is_empty();
            let buf = if own { &mut st.rbuf } else { &mut *shared };
            buf.reserve(want);
            let room = buf.capacity() - buf.len();
            match sys::fd::read_into(fd.as_fd(), buf) {
                Ok(0) => {
                    self.on_eof(st, &mut after);
                    return after;
                }
                Ok(n) => {
                    st.input += n as u64;
                    if !own {
                        st.rbuf = shared.split();
                    }
                    if !self.deliver_input(st, &mut after) {
                        return after;
                    }
                    if short_ok && n < room {
                        return after;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return after,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => {
                    self.on_eof(st, &mut after);
                    return after;
                }
                Err(e) => {
                    after.merge(self.begin_close(st, Reason::atom(errno_name(&e)), false, None));
                    return after;
                }
            }
        }
    }

    /// Delivers the frames `rbuf` holds to the owner while the read window has room; false if
    /// a frame was refused and the port is closing.
    fn deliver_input(&self, st: &mut State, after: &mut After) -> bool {
        let Err(e) = self.deliver_frames(st, false, |to, m| {
            process::deliver(to, m);
        }) else {
            return true;
        };
        // A header over `{:packet_size, n}`: its body is never read.
        let reason = match e {
            FrameError::OverPacketSize { .. } => "emsgsize",
            FrameError::PacketTooLarge { .. } => "einval",
        };
        after.merge(self.begin_close(st, Reason::atom(reason), false, None));
        false
    }

    /// Decodes what `rbuf` holds and hands each frame's message to `out`: before EOF while
    /// the read window has room (the rest waits in `rbuf`: at most a read), at EOF all of it;
    /// up to a frame the decoder refuses.
    fn deliver_frames(
        &self,
        st: &mut State,
        at_eof: bool,
        mut out: impl FnMut(Pid, Message),
    ) -> Result<(), FrameError> {
        let list = !self.0.settings.binary;
        let result = loop {
            if !at_eof && self.window_full() {
                break Ok(());
            }
            let frame = if at_eof { st.decoder.decode_eof(&mut st.rbuf) } else { st.decoder.decode(&mut st.rbuf) };
            match frame {
                Ok(Some(f)) => {
                    let data = frame_to_data(f, list);
                    self.0.unread.fetch_add(window_cost(data.bytes.len()), Ordering::SeqCst);
                    out(st.owner, Message::Port(self.clone(), PortMsg::Data(data)));
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if st.rbuf.is_empty() {
            st.rbuf = BytesMut::new();
        }
        result
    }

    pub(super) fn on_eof(&self, st: &mut State, after: &mut After) {
        st.read_eof = true;
        if !st.spawned {
            return; // a failed spawn ends the port with its error, not `:normal`
        }
        if self.0.settings.exit_status && st.exit.is_none() {
            return; // the status comes first; wait for the launcher's report
        }
        self.finish_input(st, after)
    }

    /// EOF seen and, if asked for, the exit status known: OTP's order is
    /// `exit_status`, the final partial line, then `:eof` or the exit signal `:normal`.
    pub(super) fn finish_input(&self, st: &mut State, after: &mut After) {
        if st.input_done || st.phase != Phase::Open {
            return;
        }
        st.input_done = true;
        let owner = st.owner;
        let mut last = Vec::new();
        if self.0.settings.exit_status {
            if let Some(raw) = st.exit {
                last.push(Message::Port(self.clone(), PortMsg::ExitStatus(ExitStatus::from_raw(raw))));
            }
        }
        // No refusal here: the read that brought a refused header ended the port.
        let _ = self.deliver_frames(st, true, |_, m| last.push(m));
        if self.0.settings.eof {
            last.push(Message::Port(self.clone(), PortMsg::Eof));
        } else {
            // Closed before its last messages go out, still under the lock: an owner that has
            // them finds the port closed, as before deliveries moved under the lock.
            after.merge(self.begin_close(st, Reason::Normal, false, None));
        }
        for m in last {
            process::deliver(owner, m);
        }
    }

    /// The owner took `n` bytes of this port's data from its mailbox.
    pub(crate) fn input_taken(&self, n: usize) {
        let n = window_cost(n);
        let before = self.0.unread.fetch_sub(n, Ordering::SeqCst);
        if let Some(w) = self.0.settings.read_window {
            if before >= w && before - n < w && self.0.read_paused.swap(false, Ordering::SeqCst) {
                if let Ok(e) = engine::get() {
                    e.resume(self.0.id);
                }
            }
        }
    }
}
