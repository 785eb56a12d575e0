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
use std::sync::atomic::Ordering;

use bytes::BytesMut;

use super::state::{Inner, Phase, Reading, State};
use super::{errno_name, After, Port};
use crate::driver::Driver;
use crate::framing::{Frame, FrameError};
use crate::message::{Data, ExitStatus, Message, Pid, PortMsg, Reason};
use crate::process;

/// Bytes asked of each `read`: one message in stream mode. As much as the default read
/// window: a bulk transfer then costs one read, one message and one wake-up of its owner per
/// MiB (256 KiB reads made `throughput` 25 % slower); a small message costs no more, since
/// the buffer is reused once the owner has taken what it held.
pub(super) const READ_SIZE: usize = 1 << 20;

/// What an owner's spin read with [`Driver::read`], under the port's lock, just before it
/// asks [`Port::read_input`] to deliver it in the same hold: `n` bytes in the thread's read
/// buffer (0: the end of input); `short` if the read had room for more, so the fd has nothing
/// left.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spun {
    pub(super) n: usize,
    pub(super) short: bool,
}

/// Reads one readiness event may do before the port yields to the others (and to callers
/// waiting for its lock): a program writing without pause, to a port without a read window,
/// would otherwise hold the reactor and the port for as long as it writes. Its next reads
/// wait behind the events already due, as a resumed port's do.
const READS_PER_EVENT: usize = 16;

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
    pub(super) fn on_readable(&self, shared: &mut BytesMut) {
        let after = {
            let mut st = self.lock();
            self.read_input(&mut st, shared, false, None)
        };
        after.run(self);
    }

    pub(super) fn window_full(&self) -> bool {
        self.inner().window_full()
    }

    /// Reads until `WouldBlock` (the reactor's sockets are edge-triggered), or with
    /// `short_ok` until a read returns less than asked (an owner's poll is level-triggered, so
    /// what is left shows up at the next poll; this saves a read per reply), or for at most
    /// [`READS_PER_EVENT`] reads.
    pub(super) fn read_input(
        &self,
        st: &mut State,
        shared: &mut BytesMut,
        short_ok: bool,
        mut spun: Option<Spun>,
    ) -> After {
        let mut after = After::default();
        let inner = self.inner();
        if st.phase != Phase::Open || st.inp.reading != Reading::Open || !inner.settings.reads {
            return after;
        }
        // What the spin read is the port's at once, after any partial or undelivered frame:
        // whatever this call then delivers, no byte read is left behind in `shared`.
        if let Some(Spun { n, .. }) = spun.filter(|s| s.n > 0) {
            st.inp.received += n as u64;
            if st.inp.rbuf.is_empty() {
                st.inp.rbuf = shared.split();
            } else {
                st.inp.rbuf.extend_from_slice(shared);
                shared.clear();
            }
        }
        let mut reads = 0;
        loop {
            reads += 1;
            if reads > READS_PER_EVENT {
                // No edge will come for what is left: the reactor is asked to come back.
                if let Some(e) = crate::engine::started().filter(|_| !short_ok) {
                    e.resume(inner.id);
                }
                return after;
            }
            // Frames a read left when it filled the window go out first, as far as it has room.
            // Whatever the window held back (or would, being full) pauses the port, and the
            // window is then looked at again: the owner takes messages meanwhile, emptying the
            // window before it looks at the flag (both `SeqCst`), so one of the two sees the
            // other and the frames go out, here or when the owner's take resumes reading.
            let held = if st.inp.rbuf.is_empty() {
                false
            } else if self.window_full() {
                true
            } else {
                match self.deliver_input(st, &mut after) {
                    Some(held) => held,
                    None => return after,
                }
            };
            if held || self.window_full() {
                inner.read_paused.store(true, Ordering::SeqCst);
                if self.window_full() {
                    return after;
                }
                inner.read_paused.store(false, Ordering::SeqCst);
                continue;
            }
            let want = st.inp.decoder.wanted().unwrap_or(0).clamp(READ_SIZE, READ_SIZE);
            let own = !st.inp.rbuf.is_empty();
            let (got, room, counted) = match spun.take() {
                // Read by the owner's spin, and already in `rbuf` (above).
                Some(Spun { n, short }) => (Ok(n), if short { n + 1 } else { n }, true),
                None => {
                    let buf = if own { &mut st.inp.rbuf } else { &mut *shared };
                    buf.reserve(want);
                    let room = buf.capacity() - buf.len();
                    (st.driver.read(buf), room, false)
                }
            };
            match got {
                Ok(0) => {
                    self.on_eof(st, &mut after);
                    return after;
                }
                Ok(n) => {
                    if !counted {
                        st.inp.received += n as u64;
                        if !own {
                            st.inp.rbuf = shared.split();
                        }
                    }
                    if self.deliver_input(st, &mut after).is_none() {
                        return after;
                    }
                    // A short read left nothing in the fd, but frames the window held back
                    // need the pause below, or no take of the owner's would resume reading.
                    if short_ok && n < room && !self.window_full() {
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

    /// Delivers the frames `rbuf` holds to the owner while the read window has room: whether
    /// the window held some back, or `None` if a frame was refused and the port is closing.
    fn deliver_input(&self, st: &mut State, after: &mut After) -> Option<bool> {
        let e = match self.deliver_frames(st, false, |to, m| {
            process::deliver(to, m);
        }) {
            Ok(held) => return Some(held),
            Err(e) => e,
        };
        // A header over `{:packet_size, n}`: its body is never read.
        let reason = match e {
            FrameError::OverPacketSize { .. } => "emsgsize",
            FrameError::PacketTooLarge { .. } => "einval",
        };
        after.merge(self.begin_close(st, Reason::atom(reason), false, None));
        None
    }

    /// Decodes what `rbuf` holds and hands each frame's message to `out`: before EOF while
    /// the read window has room (the rest waits in `rbuf`: at most a read), at EOF all of it;
    /// up to a frame the decoder refuses. `Ok(true)` if the window stopped it.
    fn deliver_frames(
        &self,
        st: &mut State,
        at_eof: bool,
        mut out: impl FnMut(Pid, Message),
    ) -> Result<bool, FrameError> {
        let list = !self.inner().settings.binary;
        let result = loop {
            if !at_eof && self.window_full() {
                break Ok(!st.inp.rbuf.is_empty());
            }
            let inp = &mut st.inp;
            let frame = if at_eof { inp.decoder.decode_eof(&mut inp.rbuf) } else { inp.decoder.decode(&mut inp.rbuf) };
            match frame {
                Ok(Some(f)) => {
                    let data = frame_to_data(f, list);
                    self.inner().unread.fetch_add(window_cost(data.bytes.len()), Ordering::SeqCst);
                    out(st.life.owner, Message::Port(self.clone(), PortMsg::Data(data)));
                }
                Ok(None) => break Ok(false),
                Err(e) => break Err(e),
            }
        };
        if st.inp.rbuf.is_empty() {
            st.inp.rbuf = BytesMut::new();
        }
        result
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
        // No refusal here: the read that brought a refused header ended the port.
        let _ = self.deliver_frames(st, true, |_, m| last.push(m));
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
        let n = window_cost(n);
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
