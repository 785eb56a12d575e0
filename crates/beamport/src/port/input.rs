//! Input from the program: reading its socket into reused buffers, framing, delivering
//! `{:data, ...}` to the owner in order, EOF, and the read window (child → host
//! backpressure, which OTP lacks): past the window, the port stops reading until the owner
//! takes its messages.

use std::io;
use std::sync::atomic::Ordering;

use bytes::BytesMut;

use super::state::{Inner, Phase, Reading, State};
use super::{errno_name, After, Port};
use crate::driver::Driver;
use crate::framing::Frame;
use crate::message::{Data, ExitStatus, Message, Pid, PortMsg, Reason};
use crate::process;

/// Bytes asked of each `read`: one message in stream mode.
const READ_SIZE: usize = 256 * 1024;

fn frame_to_data(frame: Frame, list: bool) -> Data {
    match frame {
        Frame::Data(bytes) => Data { bytes, line: None, list },
        Frame::Line { eol, data } => Data { bytes: data, line: Some(eol), list },
    }
}

impl Port {
    /// Called by the engine when the socket has input (or EOF).
    pub(super) fn on_readable(&self, shared: &mut BytesMut) {
        let after = {
            let mut st = self.lock();
            self.read_input(&mut st, shared, false)
        };
        after.run(self);
    }

    pub(super) fn window_full(&self) -> bool {
        self.inner().window_full()
    }

    /// Reads until `WouldBlock` (the reactor's sockets are edge-triggered), or with
    /// `short_ok` until a read returns less than asked (a direct poll is level-triggered, so
    /// what is left shows up at the next poll; this saves a read per reply).
    pub(super) fn read_input(&self, st: &mut State, shared: &mut BytesMut, short_ok: bool) -> After {
        let mut after = After::default();
        let inner = self.inner();
        if st.phase != Phase::Open || st.inp.reading != Reading::Open || !inner.settings.reads {
            return after;
        }
        loop {
            if self.window_full() {
                // Paused, then checked again: `input_taken` empties the window, then looks at
                // the flag (both `SeqCst`), so one of the two sees the other and reading resumes.
                inner.read_paused.store(true, Ordering::SeqCst);
                if self.window_full() {
                    return after;
                }
                inner.read_paused.store(false, Ordering::SeqCst);
                continue;
            }
            let want = st.inp.decoder.wanted().unwrap_or(0).clamp(READ_SIZE, 1 << 20);
            let own = !st.inp.rbuf.is_empty();
            let buf = if own { &mut st.inp.rbuf } else { &mut *shared };
            buf.reserve(want);
            let room = buf.capacity() - buf.len();
            match st.driver.read(buf) {
                Ok(0) => {
                    self.on_eof(st, &mut after);
                    return after;
                }
                Ok(n) => {
                    st.inp.received += n as u64;
                    if !own {
                        st.inp.rbuf = shared.split();
                    }
                    self.deliver_frames(st, false, |to, m| {
                        process::deliver(to, m);
                    });
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

    /// Decodes what `rbuf` holds (all of it at EOF) and hands each frame's message to `out`.
    fn deliver_frames(&self, st: &mut State, at_eof: bool, mut out: impl FnMut(Pid, Message)) {
        let list = !self.inner().settings.binary;
        let inp = &mut st.inp;
        loop {
            let frame = if at_eof { inp.decoder.decode_eof(&mut inp.rbuf) } else { inp.decoder.decode(&mut inp.rbuf) };
            match frame {
                Ok(Some(f)) => {
                    let data = frame_to_data(f, list);
                    self.inner().unread.fetch_add(data.bytes.len(), Ordering::SeqCst);
                    out(st.life.owner, Message::Port(self.clone(), PortMsg::Data(data)));
                }
                Ok(None) | Err(_) => break,
            }
        }
        if st.inp.rbuf.is_empty() {
            st.inp.rbuf = BytesMut::new();
        }
    }

    pub(super) fn on_eof(&self, st: &mut State, after: &mut After) {
        if st.inp.reading == Reading::Open {
            st.inp.reading = Reading::Eof;
        }
        if !st.behind.started {
            return; // a failed start ends the port with its error, not `:normal`
        }
        if self.inner().settings.exit_status && st.behind.exit.is_none() {
            return; // the status comes first; wait for its report
        }
        self.finish_input(st, after)
    }

    /// EOF seen and, if asked for, the exit status known: OTP's order is
    /// `exit_status`, the final partial line, then `:eof` or the exit signal `:normal`.
    pub(super) fn finish_input(&self, st: &mut State, after: &mut After) {
        if st.inp.reading == Reading::Done || st.phase != Phase::Open {
            return;
        }
        st.inp.reading = Reading::Done;
        let owner = st.life.owner;
        let mut last = Vec::new();
        if self.inner().settings.exit_status {
            if let Some(raw) = st.behind.exit {
                last.push(Message::Port(self.clone(), PortMsg::ExitStatus(ExitStatus::from_raw(raw))));
            }
        }
        self.deliver_frames(st, true, |_, m| last.push(m));
        if self.inner().settings.eof {
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
}

impl Inner {
    fn window_full(&self) -> bool {
        self.settings.read_window.is_some_and(|w| self.unread.load(Ordering::SeqCst) >= w)
    }

    /// The owner took `n` bytes of this port's data from its mailbox: a port paused at a
    /// full read window reads again. Never takes the port's lock (a mailbox may be locked).
    pub(super) fn input_taken(&self, n: usize) {
        let before = self.unread.fetch_sub(n, Ordering::SeqCst);
        if let Some(w) = self.settings.read_window {
            if before >= w && before - n < w && self.read_paused.swap(false, Ordering::SeqCst) {
                // Without a reactor (a driver without fds), whoever reads next finds room.
                if let Some(e) = crate::engine::started() {
                    e.resume(self.id);
                }
            }
        }
    }
}
