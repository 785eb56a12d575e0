//! Owner-polled replies: the thread of a port's owner, blocked in a receive, polls the port
//! it last commanded (its socket, and the pidfd of a program forked here) itself, so that a
//! reply wakes it alone instead of the reactor and then it. While it does, the port is *lent*
//! to it, out of the reactor, which takes it back if the owner stops polling (see
//! `engine::LEND_FOR`).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::{After, Phase, Port, State};
use crate::engine;
use crate::process::Pid;
use crate::sys;

thread_local! {
    /// The port this thread's process last opened or commanded while owning it: the one its
    /// next blocking receive polls itself, since that is where a reply is likely to come from.
    static DIRECT: std::cell::RefCell<Option<Port>> = const { std::cell::RefCell::new(None) };
    /// Whether this thread has had [`DIRECT`] lent to it since it became the candidate.
    static DIRECT_LENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Ports this thread had lent, then stopped offering to its receives (another port became
    /// its candidate): given back to the reactor at its next receive (see
    /// [`give_back_replaced`]), rather than left unread for up to two lend periods.
    static REPLACED: std::cell::RefCell<Vec<Port>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Read buffer for the ports this thread polls itself.
    pub(super) static DIRECT_BUF: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// After this many spins in a row that ended without a reply, a thread stops spinning for
/// [`SPIN_REST`] waits: its peers are slower than the spin.
const SPIN_MISSES: u32 = 4;
const SPIN_REST: u32 = 64;

thread_local! {
    /// Spins in a row that saw nothing, then (past [`SPIN_MISSES`]) waits left without spinning.
    static SPIN_LUCK: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// Polls a port (see [`sys::fd::poll_port`]) without sleeping for up to `spin`; `None` if
/// nothing came (or the thread should not spin now), and the caller sleeps in a blocking poll.
fn spin_poll(
    sock: Option<BorrowedFd<'_>>,
    pidfd: Option<BorrowedFd<'_>>,
    wake: BorrowedFd<'_>,
    spin: Duration,
) -> Option<sys::fd::Polled> {
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
    let seen = loop {
        match sys::fd::poll_port(sock, pidfd, wake, Some(Duration::ZERO)) {
            Ok(p) if p.any() => break Some(p),
            Ok(_) if start.elapsed() < spin => std::hint::spin_loop(),
            Ok(_) | Err(_) => break None,
        }
    };
    // Only the port's own reply is a hit: a message from elsewhere (the wake eventfd) counts
    // as a miss, so an owner of many ports, served by the reactor, soon stops spinning.
    let hit = seen.is_some_and(|p| p.ready.readable || p.exited);
    SPIN_LUCK.set(match (hit, misses + 1) {
        (true, _) => (0, 0),
        (false, m) if m >= SPIN_MISSES => (0, SPIN_REST),
        (false, m) => (m, 0),
    });
    seen
}

/// Makes `port` this thread's direct candidate; true if it already was. A candidate it
/// replaces that was lent here is kept for [`give_back_replaced`].
pub(super) fn set_direct(port: &Port) -> bool {
    DIRECT.with(|d| {
        let mut d = d.borrow_mut();
        if d.as_ref() == Some(port) {
            return true;
        }
        if let Some(old) = d.replace(port.clone()) {
            if DIRECT_LENT.replace(false) {
                REPLACED.with(|r| r.borrow_mut().push(old));
            }
        }
        false
    })
}

/// The candidate was just lent to this thread.
pub(super) fn mark_lent() {
    DIRECT_LENT.set(true);
}

/// Gives the ports this thread had lent and no longer polls (see [`REPLACED`]) back to the
/// reactor, so that their output, EOF and exit are read now. Without this, an owner with many
/// ports in flight (each new one its candidate in turn) left each old one unread until the
/// lend timer took it back: with a 50 ms period, that cut `spawn_par64` by 17 %. Called with
/// no lock held.
fn give_back_replaced(engine: &engine::Engine, current: &Port) {
    let replaced = REPLACED.with(|r| std::mem::take(&mut *r.borrow_mut()));
    for p in replaced.iter().filter(|p| *p != current) {
        p.take_back(engine);
    }
}

/// The port a blocking receive on this thread may poll itself.
pub(crate) fn direct_candidate() -> Option<Port> {
    DIRECT.with(|d| d.borrow().clone())
}

/// Stops offering `port` to this thread's receives (it cannot be polled directly now).
pub(crate) fn forget_direct(port: &Port) {
    DIRECT.with(|d| {
        let mut d = d.borrow_mut();
        if d.as_ref() == Some(port) {
            *d = None;
            DIRECT_LENT.set(false);
        }
    });
}

impl Port {
    /// Polls the socket on the calling (owner's) thread instead of the reactor, until it is
    /// readable, `wake` is signalled (a message came, or the port needs the reactor back) or
    /// `timeout` passes; then reads what came, delivering it as the reactor would, and hands
    /// the socket back. A request-reply exchange then costs the owner one wake-up, as a plain
    /// blocking `read` would, instead of two (reactor, then owner). A program the host forked
    /// is polled too, through its pidfd, and reaped here: after its EOF, the owner waiting for
    /// its exit status is woken by its exit itself. Returns false, without waiting, if the
    /// port cannot be polled so (not the caller's, closed, paused, output queued, or already
    /// polled).
    pub(crate) fn wait_direct(
        &self,
        me: Pid,
        wake: std::os::fd::BorrowedFd<'_>,
        timeout: Option<std::time::Duration>,
        stop_polling: impl FnOnce(),
    ) -> bool {
        let Ok(engine) = engine::get() else { return false };
        give_back_replaced(engine, self);
        let (sock, pidfd, spin) = {
            let mut st = self.lock();
            if st.owner != me || st.direct.is_some() || !self.pollable(&st) {
                return false;
            }
            if !st.lent && !self.lend(&mut st, engine) {
                return false;
            }
            mark_lent();
            st.direct = Some(me);
            let sock = if self.lendable(&st) { st.fd.clone() } else { None };
            let spin = if std::mem::take(&mut st.replying) {
                self.0.settings.spin_wait.min(timeout.unwrap_or(Duration::MAX))
            } else {
                Duration::ZERO
            };
            (sock, st.pidfd.clone(), spin)
        };
        let (s, p) = (sock.as_ref().map(|f| f.as_fd()), pidfd.as_ref().map(|f| f.as_fd()));
        let start = Instant::now();
        let polled = match spin_poll(s, p, wake, spin) {
            Some(seen) => Ok(seen),
            None => sys::fd::poll_port(s, p, wake, timeout.map(|t| t.saturating_sub(start.elapsed()))),
        };
        stop_polling();
        let polled = polled.unwrap_or_default();
        if polled.woken {
            sys::fd::eventfd_drain(wake);
        }
        let after = {
            let mut st = self.lock();
            st.direct = None;
            let mut after = After::default();
            if polled.ready.readable {
                let short_ok = !polled.ready.closed;
                after = DIRECT_BUF.with(|b| self.read_input(&mut st, &mut b.borrow_mut(), short_ok));
            }
            if polled.exited {
                if let Some((_, raw, group_left)) = engine.reap_direct(self.0.id) {
                    after.merge(self.child_exited(&mut st, raw, group_left));
                }
            }
            if st.lent {
                // Still the owner's while it keeps polling; else back to the reactor.
                if self.pollable(&st) {
                    engine.still_lent(self.0.id);
                } else {
                    self.rearm(&mut st, engine);
                }
            }
            after
        };
        drop((sock, pidfd)); // closes the socket if the port ended meanwhile
        after.run(self);
        true
    }

    /// The owner commands: the port becomes its thread's direct candidate, and if it already
    /// was (a request-reply loop), the socket is lent before the write, so that the reply
    /// cannot wake the reactor before the owner's receive polls it.
    pub(super) fn lend_for_reply(&self, st: &mut State) {
        st.replying = true;
        if set_direct(self) && st.registered && self.lendable(st) {
            if let Ok(e) = engine::get() {
                if self.lend(st, e) {
                    mark_lent();
                }
            }
        }
    }

    /// Whether the owner's thread may poll the socket itself: the port is open, reads, is not
    /// paused, and has no output queued (which needs the reactor's writability events).
    pub(super) fn lendable(&self, st: &State) -> bool {
        st.phase == Phase::Open
            && self.0.settings.reads
            && !st.read_eof
            && !self.0.read_paused.load(Ordering::SeqCst)
            && st.queue.is_empty()
            && (st.registered || st.lent)
            && !self.window_full()
    }

    /// Whether the owner's thread may poll the port itself: its socket ([`Port::lendable`]),
    /// or, once the socket is at EOF, the pidfd of a program forked here whose exit status
    /// the port still waits for.
    pub(super) fn pollable(&self, st: &State) -> bool {
        self.lendable(st) || (st.phase == Phase::Open && st.pidfd.is_some() && st.read_eof && st.exit.is_none())
    }

    /// Lends the port to its owner's thread: its socket and pidfd leave the reactor.
    pub(super) fn lend(&self, st: &mut State, engine: &engine::Engine) -> bool {
        if st.registered {
            let Some(fd) = st.fd.as_ref() else { return false };
            if engine.deregister(fd.as_fd()).is_err() {
                return false;
            }
            st.registered = false;
            st.write_armed = false;
        }
        if st.pidfd_watched {
            if let Some(p) = st.pidfd.as_ref() {
                let _ = engine.deregister(p.as_fd());
            }
            st.pidfd_watched = false;
        }
        engine.still_lent(self.0.id);
        st.lent = true;
        true
    }

    /// Gives a lent port back to the reactor, for what it still needs.
    pub(super) fn rearm(&self, st: &mut State, engine: &engine::Engine) {
        st.lent = false;
        engine.unlend(self.0.id);
        self.watch_pidfd(st, engine);
        let read = self.0.settings.reads && !st.read_eof;
        let write = !st.queue.is_empty();
        let Some(fd) = st.fd.as_ref().filter(|_| matches!(st.phase, Phase::Open | Phase::Closing)) else { return };
        if (read || write) && engine.register(fd.as_fd(), self.0.id, write).is_ok() {
            st.registered = true;
            st.write_armed = write;
        }
    }

    /// Has the reactor watch the pidfd of a program forked here, to reap it.
    pub(super) fn watch_pidfd(&self, st: &mut State, engine: &engine::Engine) {
        if let Some(p) = st.pidfd.as_ref().filter(|_| !st.pidfd_watched) {
            st.pidfd_watched = engine.watch_pidfd(p.as_fd(), self.0.id).is_ok();
        }
    }

    /// Called by the engine when a lent socket was not polled for [`engine::LEND_FOR`].
    pub(crate) fn take_back(&self, engine: &engine::Engine) {
        let mut st = self.lock();
        if st.lent && st.direct.is_none() {
            self.rearm(&mut st, engine);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{process, Name, Opt, Port};

    fn echo(port: &Port, me: &crate::Process, what: &'static str) {
        port.command(what).unwrap();
        let msg = me.receive().unwrap();
        assert_eq!(msg.data().unwrap().as_str(), Some(what));
    }

    /// Without the give-back, `a` would stay lent (its output and exit unread) until the lend
    /// timer took it back, two periods later at most; the exchanges below take far less.
    #[test]
    fn a_lent_port_goes_back_to_the_reactor_once_its_owner_polls_another() {
        let me = process::current();
        let a = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
        echo(&a, &me, "a"); // the owner polled `a` itself: lent
        assert!(a.lock().lent);
        let b = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
        echo(&b, &me, "b"); // now `b` is polled, and `a` is the reactor's again
        assert!(b.lock().lent);
        assert!(!a.lock().lent && a.lock().registered);
        echo(&a, &me, "a again"); // and works as before
        a.close().unwrap();
        b.close().unwrap();
    }
}
