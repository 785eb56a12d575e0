//! Owner-polled replies: the thread of a port's owner, blocked in a receive, polls the port
//! it last commanded (the driver's io fd, and its exit fd) itself, so that a reply wakes it
//! alone instead of the reactor and then it. While it does, the port is *lent* to it, out of
//! the reactor, which takes it back if the owner stops polling (see `engine::LEND_FOR`).
//! The port a thread's receives poll is its *poll candidate* (kept by the process layer).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::input::{Spun, READ_SIZE};
use super::state::{Phase, Reading, State, WatchMode};
use super::{After, Port};
use crate::driver::Driver;
use crate::engine::Engine;
use crate::message::Pid;
use crate::process;
use crate::sys;

thread_local! {
    /// Whether this thread has had its poll candidate lent to it since it became the
    /// candidate.
    static CANDIDATE_LENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Ports this thread had lent, then stopped offering to its receives (another port became
    /// its candidate): given back to the reactor at its next receive (see
    /// [`give_back_replaced`]), rather than left unread for up to two lend periods.
    static REPLACED: std::cell::RefCell<Vec<Port>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Read buffer for the ports this thread polls itself.
    static POLL_BUF: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// After this many spins in a row that ended without a reply, a thread stops spinning for
/// [`SPIN_REST`] waits: its peers are slower than the spin.
const SPIN_MISSES: u32 = 4;
const SPIN_REST: u32 = 64;

thread_local! {
    /// Spins in a row that saw nothing, then (past [`SPIN_MISSES`]) waits left without spinning.
    static SPIN_LUCK: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// How often an owner's spin polls everything (see [`spin_poll`]) rather than reading.
const POLL_EVERY: u32 = 8;

/// What an owner's spin saw.
enum Seen {
    /// `poll`'s answer.
    Polled(sys::fd::Polled),
    /// The port read something (or can no longer be read by its owner), and delivered it.
    Read(After),
}

/// Polls a port (see [`sys::fd::poll_port`]) without sleeping for up to `spin`; `None` if
/// nothing came (or the thread should not spin now), and the caller sleeps in a blocking poll.
/// With `read_now`, most tries read the port instead (its read and the delivery of what it
/// read, under the port's lock), so that a reply is read by the try that sees it, with no
/// `poll` first; every [`POLL_EVERY`]th try (the first among them) polls everything, for a
/// message from elsewhere or the exit.
fn spin_poll(
    sock: Option<BorrowedFd<'_>>,
    pidfd: Option<BorrowedFd<'_>>,
    wake: BorrowedFd<'_>,
    spin: Duration,
    mut read_now: Option<&mut dyn FnMut() -> Option<After>>,
) -> Option<Seen> {
    static CPUS: OnceLock<usize> = OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (misses, rest) = SPIN_LUCK.get();
    if spin.is_zero() || cpus < 2 {
        return None;
    }
    if rest > 0 {
        SPIN_LUCK.set((misses, rest - 1));
        return None;
    }
    let start = Instant::now();
    let mut tries = 0u32;
    let seen = loop {
        match read_now.as_deref_mut() {
            Some(read) if sock.is_some() && tries % POLL_EVERY != 0 => {
                if let Some(after) = read() {
                    break Some(Seen::Read(after));
                }
            }
            _ => match sys::fd::poll_port(sock, pidfd, wake, Some(Duration::ZERO)) {
                Ok(p) if p.any() => break Some(Seen::Polled(p)),
                Ok(_) => {}
                Err(_) => break None,
            },
        }
        tries += 1;
        if start.elapsed() >= spin {
            break None;
        }
        std::hint::spin_loop();
    };
    // Only the port's own reply is a hit: a message from elsewhere (the wake eventfd) counts
    // as a miss, so an owner of many ports, served by the reactor, soon stops spinning.
    let hit = match &seen {
        Some(Seen::Read(_)) => true,
        Some(Seen::Polled(p)) => p.ready.readable || p.exited,
        None => false,
    };
    SPIN_LUCK.set(match (hit, misses + 1) {
        (true, _) => (0, 0),
        (false, m) if m >= SPIN_MISSES => (0, SPIN_REST),
        (false, m) => (m, 0),
    });
    seen
}

/// Makes `port` this thread's poll candidate; true if it already was. A candidate it
/// replaces that was lent here is kept for [`give_back_replaced`].
pub(super) fn set_poll_candidate(port: &Port) -> bool {
    if process::is_poll_candidate(port) {
        return true;
    }
    if let Some(old) = process::replace_poll_candidate(Some(port.clone())) {
        if CANDIDATE_LENT.replace(false) {
            REPLACED.with(|r| r.borrow_mut().push(old));
        }
    }
    false
}

/// The candidate was just lent to this thread.
pub(super) fn mark_lent() {
    CANDIDATE_LENT.set(true);
}

/// Stops offering `port` to this thread's receives (it cannot be polled now).
fn forget_poll_candidate(port: &Port) {
    if process::is_poll_candidate(port) {
        process::replace_poll_candidate(None);
        CANDIDATE_LENT.set(false);
    }
}

/// Gives the ports this thread had lent and no longer polls (see [`REPLACED`]) back to the
/// reactor, so that their output, EOF and exit are read now. Without this, an owner with many
/// ports in flight (each new one its candidate in turn) left each old one unread until the
/// lend timer took it back: with a 50 ms period, that cut `spawn_par64` by 17 %. Called with
/// no lock held.
fn give_back_replaced(engine: &Engine, current: &Port) {
    let replaced = REPLACED.with(|r| std::mem::take(&mut *r.borrow_mut()));
    for p in replaced.iter().filter(|p| *p != current) {
        p.take_back(engine);
    }
}

impl Port {
    /// Polls the port on the calling (owner's) thread instead of the reactor, until its io fd
    /// is readable, its exit fd says the thing behind ended, `wake` is signalled (a message
    /// came, or the port needs the reactor back) or `timeout` passes; then reads what came,
    /// delivering it as the reactor would, and hands the fds back. A request-reply exchange
    /// then costs the owner one wake-up, as a plain blocking `read` would, instead of two
    /// (reactor, then owner). A program the host forked is reaped here: after its EOF, the
    /// owner waiting for its exit status is woken by its exit itself. Returns false, without
    /// waiting, if the port cannot be polled so (not the caller's, closed, paused, output
    /// queued, or already polled); it is then no longer the thread's poll candidate.
    pub(super) fn poll_for_owner(
        &self,
        me: Pid,
        wake: BorrowedFd<'_>,
        timeout: Option<Duration>,
        stop_polling: &mut dyn FnMut(),
    ) -> bool {
        let polled = self.try_poll_for_owner(me, wake, timeout, stop_polling);
        if !polled {
            forget_poll_candidate(self);
        }
        polled
    }

    fn try_poll_for_owner(
        &self,
        me: Pid,
        wake: BorrowedFd<'_>,
        timeout: Option<Duration>,
        stop_polling: &mut dyn FnMut(),
    ) -> bool {
        let Some(engine) = crate::engine::started() else { return false };
        give_back_replaced(engine, self);
        let (io, exit, spin) = {
            let mut st = self.lock();
            let lent = match st.watch.mode {
                WatchMode::Lent { poller: None } => true,
                WatchMode::Lent { poller: Some(_) } => return false,
                _ => false,
            };
            if st.life.owner != me || !self.pollable(&st) {
                return false;
            }
            if !lent && !self.lend(&mut st, engine) {
                return false;
            }
            mark_lent();
            st.watch.mode = WatchMode::Lent { poller: Some(me) };
            let io = if self.lendable(&st) { st.driver.io_fd().cloned() } else { None };
            let spin = if std::mem::take(&mut st.watch.replying) {
                self.inner().settings.spin_wait.min(timeout.unwrap_or(Duration::MAX))
            } else {
                Duration::ZERO
            };
            (io, st.driver.exit_fd().cloned(), spin)
        };
        let (s, p) = (io.as_ref().map(|f| f.as_fd()), exit.as_ref().map(|f| f.as_fd()));
        // One try of the spin: the port's read and the delivery of what it got, in one hold
        // of its lock, as the reactor's, so that the two never reorder input between them.
        // `None` while the driver has nothing; `Some` once it read something or the port can
        // no longer be read by its owner (closed, taken back, its window full).
        let mut read_now = || -> Option<After> {
            let mut st = self.lock();
            if st.watch.mode != (WatchMode::Lent { poller: Some(me) }) || !self.lendable(&st) {
                return Some(After::default());
            }
            POLL_BUF.with(|b| {
                let buf = &mut *b.borrow_mut();
                buf.reserve(READ_SIZE);
                let room = buf.capacity() - buf.len();
                match st.driver.read(buf) {
                    Ok(n) => {
                        // Before the delivery: a message to a thread still marked polling
                        // would signal its wake eventfd too.
                        stop_polling();
                        Some(self.read_input(&mut st, buf, true, Some(Spun { n, short: n < room })))
                    }
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => None,
                    // The port's own read, after the spin, reports it.
                    Err(_) => Some(After::default()),
                }
            })
        };
        let start = Instant::now();
        let (polled, spun) = match spin_poll(s, p, wake, spin, Some(&mut read_now)) {
            Some(Seen::Polled(seen)) => (Ok(seen), None),
            Some(Seen::Read(after)) => (Ok(sys::fd::Polled::default()), Some(after)),
            None => (sys::fd::poll_port(s, p, wake, timeout.map(|t| t.saturating_sub(start.elapsed()))), None),
        };
        stop_polling();
        let polled = polled.unwrap_or_default();
        if polled.woken {
            sys::fd::eventfd_drain(wake);
        }
        let after = {
            let mut st = self.lock();
            if matches!(st.watch.mode, WatchMode::Lent { .. }) {
                st.watch.mode = WatchMode::Lent { poller: None };
            }
            let mut after = spun.unwrap_or_default();
            if polled.ready.readable {
                let short_ok = !polled.ready.closed;
                after.merge(POLL_BUF.with(|b| self.read_input(&mut st, &mut b.borrow_mut(), short_ok, None)));
            }
            if polled.exited {
                if let Some((raw, group_left)) = engine.reap_forked(self.inner().id) {
                    after.merge(self.child_exited(&mut st, raw, group_left));
                }
            }
            if matches!(st.watch.mode, WatchMode::Lent { .. }) {
                // Still the owner's while it keeps polling; else back to the reactor.
                if self.pollable(&st) {
                    engine.still_lent(self.inner().id);
                } else {
                    self.rearm(&mut st, engine);
                }
            }
            self.forget_if_done(&st);
            after
        };
        drop((io, exit)); // closes the socket if the port ended meanwhile
        after.run(self);
        true
    }

    /// The owner commands: the port becomes its thread's poll candidate, and if it already
    /// was (a request-reply loop), its io fd is lent before the write, so that the reply
    /// cannot wake the reactor before the owner's receive polls it.
    pub(super) fn lend_for_reply(&self, st: &mut State) {
        st.watch.replying = true;
        if set_poll_candidate(self) && matches!(st.watch.mode, WatchMode::Reactor { .. }) && self.lendable(st) {
            if let Some(e) = crate::engine::started() {
                if self.lend(st, e) {
                    mark_lent();
                }
            }
        }
    }

    /// Whether the owner's thread may poll the io fd itself: the port is open, reads, is not
    /// paused, and has no output queued (which needs the reactor's writability events).
    pub(super) fn lendable(&self, st: &State) -> bool {
        let inner = self.inner();
        st.phase == Phase::Open
            && inner.settings.reads
            && st.inp.reading == Reading::Open
            && !inner.read_paused.load(Ordering::SeqCst)
            && st.out.queue.is_empty()
            && matches!(st.watch.mode, WatchMode::Reactor { .. } | WatchMode::Lent { .. })
            && st.driver.io_fd().is_some()
            && !self.window_full()
    }

    /// Whether the owner's thread may poll the port itself: its io fd ([`Port::lendable`]),
    /// or, once that is at EOF, the exit fd of the thing behind, whose exit status the port
    /// still waits for.
    pub(super) fn pollable(&self, st: &State) -> bool {
        self.lendable(st)
            || (st.phase == Phase::Open
                && st.driver.exit_fd().is_some()
                && st.inp.reading != Reading::Open
                && st.behind.exit.is_none())
    }

    /// Lends the port to its owner's thread: its fds leave the reactor.
    pub(super) fn lend(&self, st: &mut State, engine: &Engine) -> bool {
        if let WatchMode::Reactor { .. } = st.watch.mode {
            let Some(fd) = st.driver.io_fd() else { return false };
            if engine.deregister(fd.as_fd()).is_err() {
                return false;
            }
        }
        if st.watch.exit_watched {
            if let Some(p) = st.driver.exit_fd() {
                let _ = engine.deregister(p.as_fd());
            }
            st.watch.exit_watched = false;
        }
        engine.still_lent(self.inner().id);
        st.watch.mode = WatchMode::Lent { poller: None };
        true
    }

    /// Gives a lent port back to the reactor, for what it still needs.
    pub(super) fn rearm(&self, st: &mut State, engine: &Engine) {
        st.watch.mode = WatchMode::Off;
        engine.unlend(self.inner().id);
        self.watch_exit(st, engine);
        let read = self.inner().settings.reads && st.inp.reading == Reading::Open;
        let write = !st.out.queue.is_empty();
        if !matches!(st.phase, Phase::Open | Phase::Closing) {
            return;
        }
        let Some(fd) = st.driver.io_fd() else { return };
        if (read || write) && engine.register(fd.as_fd(), self.inner().id, write).is_ok() {
            st.watch.mode = WatchMode::Reactor { write };
        }
    }

    /// Called by the engine when a lent port was not polled for [`crate::engine::LEND_FOR`].
    pub(super) fn take_back(&self, engine: &Engine) {
        let mut st = self.lock();
        if st.watch.mode == (WatchMode::Lent { poller: None }) {
            self.rearm(&mut st, engine);
        }
    }
}
