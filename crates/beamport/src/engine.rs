//! The I/O engine: one `epoll` reactor thread (through mio) for every port and the
//! launcher's control socket, and the host's side of the launcher: spawn requests, exit
//! reports, kill ladders, and the children host threads fork themselves.
//!
//! The engine knows nothing of ports. Like mio's `Poll`, it deals in tokens (a port's id) and
//! hands what happens to the one [`Dispatch`] its user installed when it started: readiness
//! of a registered fd, a lent fd not polled in time, a child's start, failure and exit. Fds
//! are non-blocking and edge-triggered: a reader drains until `WouldBlock`, except when a
//! port's read window is full, in which case the port remembers it is paused and
//! [`Engine::resume`] wakes it.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::launcher::proto::{FromLauncher, ToLauncher};
use crate::sys;
use crate::sys::start::Isolation;

/// Where the engine hands what happens, by id: the port layer's table.
pub(crate) trait Dispatch: Send + Sync + 'static {
    /// A registered fd is ready (or its read window reopened: `ready` is readable then).
    fn io_ready(&self, id: u64, ready: Ready, buf: &mut BytesMut);
    /// A lent fd was not polled for [`LEND_FOR`]: the reactor should take it back.
    fn lend_expired(&self, id: u64);
    /// News of the child behind port `id`.
    fn child(&self, id: u64, news: ChildNews);
}

/// What a readiness event says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    /// Input, EOF or an error is there to read.
    pub readable: bool,
    /// Room for output, or an error to find by writing.
    pub writable: bool,
}

/// What the engine learns of a port's child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChildNews {
    /// The launcher started it: its pid in the launcher's namespace and in the host's.
    Spawned { ns_pid: i32, host_pid: i32 },
    /// The launcher could not start it (`errno`), or is gone.
    SpawnFailed(i32),
    /// It ended (raw wait status); `group_left`: members of its process group outlive it.
    Exited { raw: i32, group_left: bool },
}

const WAKER: Token = Token(usize::MAX);
const LAUNCHER: Token = Token(usize::MAX - 1);
const LENT_TIMER: Token = Token(usize::MAX - 2);
/// How many programs forked by host threads may run at once; past that the launcher forks.
/// Forking on the opener's thread saves the launcher's two hops on each spawn, and the opener
/// does not wait for the exec (`sys::child::fork_exec_here`), so with many spawns in flight
/// it goes on while the children set themselves up, where a second CPU is free (BENCHMARKS.md
/// has the figures). Each such program holds a pidfd, a second fd for its port, hence a cap
/// (and see [`HOST_FORK_MAX_FD`]): a host with thousands of ports open stays at about one fd
/// each.
const HOST_FORKS_AT_ONCE: usize = 64;

/// A host thread forks only while its fds are fewer than this: the child gets a copy of the
/// host's fd table (and closes it before `execve`), which costs in proportion to its size
/// (measured in C: 128 more open fds cost a child 8–20 µs, 400 cost it 30–70 µs, of a
/// ~500 µs spawn); the launcher's table stays small.
const HOST_FORK_MAX_FD: i32 = 1024;

/// Set in the token of a host-forked child's pidfd, whose low bits are its port's id.
const PIDFD_BIT: usize = 1 << 62;

/// How long a port may stay lent to its owner's thread (out of the reactor) without that
/// thread polling it, before the reactor takes it back (it looks once per period, so a port
/// goes back within two: an owner that stops polling delays its port's events by 16 ms at
/// most). While a port is lent, each look wakes the reactor, a timer interrupt and a timer
/// reprogramming (VM exits on virtual machines) in the middle of the owner's exchanges: at
/// 1 ms that hit about one ping-pong round trip in 85 and doubled the pinned p99 (see
/// BENCHMARKS.md).
pub(crate) const LEND_FOR: Duration = Duration::from_millis(8);

pub(crate) struct Engine {
    registry: mio::Registry,
    waker: Waker,
    /// Where events go.
    dispatch: &'static dyn Dispatch,
    resume: Mutex<Vec<u64>>,
    sock: OwnedFd,
    send_lock: Mutex<()>,
    outbox: Mutex<Option<mpsc::Sender<ToLauncher>>>,
    next_req: AtomicU64,
    /// Spawn requests with no reply yet: request number → port id.
    pending: Mutex<HashMap<u64, u64>>,
    /// The launcher's running children: pid in its namespace → port id.
    pids: Mutex<HashMap<i32, u64>>,
    /// Ports lent to their owner's thread (see [`Engine::deregister`]), with when their
    /// owner last polled each.
    lent: Mutex<HashMap<u64, Instant>>,
    lent_timer: OwnedFd,
    lent_timer_armed: AtomicBool,
    launcher_gone: AtomicBool,
    cgroup: Option<PathBuf>,
    /// The launcher's PID namespace, when host threads may fork children into it themselves
    /// (see [`Engine::fork_here`]); `None` when the launcher forks every child.
    host_forks: Option<sys::child::PidNamespace>,
    /// Children a host thread forked and the host has not reaped yet, by port id.
    forked: Mutex<HashMap<u64, Forked>>,
    /// How many such children may live at once ([`HOST_FORKS_AT_ONCE`], less under a tiny fd
    /// limit: each holds a pidfd, a second fd for its port).
    host_fork_cap: usize,
    /// How the launcher was started.
    pub(crate) launcher: LauncherInfo,
    /// Programs started so far by a host thread ([`Engine::fork_here`]) and by the launcher
    /// ([`Engine::spawn`]): which path spawns took, for `beamport doctor` and the bench.
    pub(crate) started_here: AtomicU64,
    pub(crate) started_by_launcher: AtomicU64,
}

/// What [`Engine::fork_here`] started.
pub(crate) struct ForkedHere {
    /// The child's pid, as the host sees it.
    pub pid: i32,
    /// Where it stores its pid in the launcher's namespace (see [`sys::child::ns_pid`]).
    pub announce: Arc<std::sync::atomic::AtomicI32>,
    /// Readable once the child has exited.
    pub pidfd: Arc<OwnedFd>,
}

/// A child forked by a host thread: its pidfd (shared with its port, which polls it while its
/// owner waits) and its pid. Kept until reaped, so that its port learns of its exit even
/// after it closed.
struct Forked {
    pidfd: Arc<OwnedFd>,
    pid: i32,
}

/// What `beamport doctor` reports about the launcher.
#[derive(Debug, Clone)]
pub(crate) struct LauncherInfo {
    pub pid: i32,
    pub isolation: Isolation,
    pub refused: Vec<(Isolation, String)>,
    pub nofile_limit: u64,
    /// Why host threads cannot fork children themselves, or `None` if they do.
    pub host_fork_refused: Option<String>,
    /// In a PID namespace tier, why port programs see the host's `/proc`, not their namespace's.
    pub proc_refused: Option<String>,
}

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

/// The engine, started on first use with `dispatch` as where its events go (the first
/// caller's; every caller passes the same).
pub(crate) fn get(dispatch: &'static dyn Dispatch) -> io::Result<&'static Engine> {
    ENGINE.get_or_init(|| start(dispatch).map_err(|e| e.to_string())).as_ref().map_err(|e| io::Error::other(e.clone()))
}

/// The engine if it has started.
pub(crate) fn started() -> Option<&'static Engine> {
    ENGINE.get().and_then(|e| e.as_ref().ok())
}

/// Starts the launcher with the strongest isolation the machine allows: a PID namespace,
/// else a cgroup v2 group with `cgroup.kill`, else a plain child. The variables
/// `BEAMPORT_NO_NAMESPACE` and `BEAMPORT_NO_CGROUP` turn tiers off, to test the weaker ones.
fn start_launcher(sock: &OwnedFd) -> io::Result<(sys::start::Started, Option<PathBuf>)> {
    use sys::start::{start_launcher, Isolation};
    let mut refused: Vec<(Isolation, io::Error)> = Vec::new();
    let off = |tier, var: &str| (tier, io::Error::other(format!("turned off by {var}")));
    if std::env::var_os("BEAMPORT_NO_NAMESPACE").is_none() {
        match start_launcher(sock, &[Isolation::PidNamespace, Isolation::UserPidNamespace], &[]) {
            Ok(s) => return Ok((s, None)),
            Err(r) => refused.extend(r),
        }
    } else {
        refused.push(off(Isolation::PidNamespace, "BEAMPORT_NO_NAMESPACE"));
    }
    if std::env::var_os("BEAMPORT_NO_CGROUP").is_none() {
        match sys::cgroup::create() {
            Ok(dir) => {
                match start_launcher(sock, &[Isolation::Cgroup], &[(sys::cgroup::CGROUP_ENV, dir.as_os_str())]) {
                    Ok(mut s) => {
                        refused.append(&mut s.refused);
                        s.refused = refused;
                        return Ok((s, Some(dir)));
                    }
                    Err(r) => {
                        let _ = std::fs::remove_dir(&dir);
                        refused.extend(r);
                    }
                }
            }
            Err(e) => refused.push((Isolation::Cgroup, e)),
        }
    } else {
        refused.push(off(Isolation::Cgroup, "BEAMPORT_NO_CGROUP"));
    }
    match start_launcher(sock, &[Isolation::Plain], &[]) {
        Ok(mut s) => {
            refused.append(&mut s.refused);
            s.refused = refused;
            Ok((s, None))
        }
        Err(mut r) => Err(r.pop().map(|(_, e)| e).unwrap_or_else(|| io::Error::other("no tier could start"))),
    }
}

fn start(dispatch: &'static dyn Dispatch) -> io::Result<Engine> {
    let spawning = crate::spawning::take();
    let nofile_limit = sys::fd::raise_nofile_limit();
    let poll = Poll::new()?;
    let registry = poll.registry().try_clone()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let (host, launcher_end) = sys::fd::stream_pair()?;
    let (tx, rx) = mpsc::sync_channel(1);
    // The launcher's death signal fires when the thread that started it ends, so the
    // reactor thread, which lives as long as the host, starts it.
    std::thread::Builder::new().name("beamport-io".into()).spawn(move || {
        let started = start_launcher(&launcher_end);
        drop(launcher_end);
        let ok = started.is_ok();
        let _ = tx.send(started);
        if ok {
            reactor(poll);
        }
    })?;
    let (launched, cgroup) = rx.recv().map_err(|_| io::Error::other("reactor thread died"))??;
    sys::msg::pass_credentials(host.as_fd())?;
    registry.register(&mut SourceFd(&host.as_raw_fd()), LAUNCHER, Interest::READABLE)?;
    let lent_timer = sys::fd::timer()?;
    registry.register(&mut SourceFd(&lent_timer.as_raw_fd()), LENT_TIMER, Interest::READABLE)?;
    let (host_forks, host_fork_refused) = host_forking(&launched, spawning);
    let (out_tx, out_rx) = mpsc::channel::<ToLauncher>();
    let engine = Engine {
        registry,
        waker,
        dispatch,
        resume: Mutex::new(Vec::new()),
        sock: host,
        send_lock: Mutex::new(()),
        outbox: Mutex::new(Some(out_tx)),
        next_req: AtomicU64::new(1),
        pending: Mutex::new(HashMap::new()),
        pids: Mutex::new(HashMap::new()),
        lent: Mutex::new(HashMap::new()),
        lent_timer,
        lent_timer_armed: AtomicBool::new(false),
        launcher_gone: AtomicBool::new(false),
        cgroup,
        host_forks,
        forked: Mutex::new(HashMap::new()),
        host_fork_cap: HOST_FORKS_AT_ONCE.min((nofile_limit / 16) as usize),
        launcher: LauncherInfo {
            pid: launched.pid,
            isolation: launched.isolation,
            refused: launched.refused.iter().map(|(i, e)| (*i, e.to_string())).collect(),
            nofile_limit,
            host_fork_refused,
            proc_refused: launched.proc_refused.as_ref().map(|e| e.to_string()),
        },
        started_here: AtomicU64::new(0),
        started_by_launcher: AtomicU64::new(0),
    };
    std::thread::Builder::new().name("beamport-launcher-out".into()).spawn(move || {
        // Requests that queued up meanwhile go out in one write.
        while let Ok(req) = out_rx.recv() {
            let mut batch = req.encode();
            while let Ok(more) = out_rx.try_recv() {
                batch.extend_from_slice(&more.encode());
            }
            if let Some(e) = started() {
                let _g = e.send_lock.lock().expect("send lock");
                let _ = sys::msg::send_all(e.sock.as_fd(), &batch, None);
            }
        }
    })?;
    Ok(engine)
}

/// Whether host threads may fork children themselves, into the launcher's PID namespace:
/// only in the namespace tiers (a child there dies with the launcher, whatever happens to the
/// host), and only if the host's children may be born there: root enters the namespace
/// (`CAP_SYS_ADMIN` over it), another user's host goes through a hop into the launcher's user
/// namespace, which that user owns. `BEAMPORT_SPAWNING=launcher` and [`crate::set_spawning`]
/// turn it off.
fn host_forking(
    started: &sys::start::Started,
    spawning: crate::Spawning,
) -> (Option<sys::child::PidNamespace>, Option<String>) {
    if std::env::var_os("BEAMPORT_SPAWNING").is_some_and(|v| v == "launcher") {
        return (None, Some("turned off by BEAMPORT_SPAWNING=launcher".into()));
    }
    if spawning == crate::Spawning::Launcher {
        return (None, Some("turned off by set_spawning(Spawning::Launcher)".into()));
    }
    // A host that is not root reaches a PID namespace owned by the launcher's user namespace
    // through a hop (`sys::child::fork_exec_here`).
    let user = match started.isolation {
        Isolation::PidNamespace => false,
        Isolation::UserPidNamespace => true,
        other => return (None, Some(format!("the {other:?} tier has no PID namespace to fork into"))),
    };
    // Checked on a thread of its own: a thread whose children go to another namespace cannot
    // start threads, should its way back fail.
    let pid = started.pid;
    // The children join the launcher's mount namespace too, where it has a `/proc` of its own.
    let mount = started.proc_refused.is_none();
    match std::thread::spawn(move || sys::child::PidNamespace::of(pid, mount, user)).join() {
        Ok(Ok(ns)) => (Some(ns), None),
        Ok(Err(e)) => (None, Some(format!("cannot enter the launcher's PID namespace: {e}"))),
        Err(_) => (None, Some("the check panicked".into())),
    }
}

impl Engine {
    /// Whether the next port's program may be forked by its opener's thread
    /// ([`Engine::fork_here`]). `child` is the child's end of the port's socket, just made:
    /// the lowest free fd, so every fd below it is open.
    pub(crate) fn host_may_fork(&self, child: BorrowedFd<'_>) -> bool {
        self.host_forks.is_some()
            && !self.launcher_gone.load(Ordering::Acquire)
            && child.as_raw_fd() < HOST_FORK_MAX_FD
            && self.forked.lock().expect("forked children").len() < self.host_fork_cap
            // A host whose children the kernel reaps unasked would lose the exit status.
            && !sys::signal::children_autoreaped()
    }

    /// Forks and execs `spec` on the calling thread, into the launcher's PID namespace, as
    /// `posix_spawn` would: no request to the launcher, no reply to wait for. The child is
    /// the host's to reap (through its pidfd, which the reactor watches under port `id`, once
    /// the port is not lent to its owner) and the launcher's to kill when the host is gone.
    /// On failure the spec comes back, if it can still be handed to the launcher.
    pub(crate) fn fork_here(
        &self,
        id: u64,
        spec: sys::child::ChildSpec,
    ) -> Result<ForkedHere, (io::Error, Option<Box<sys::child::ChildSpec>>)> {
        let gone = || io::Error::from_raw_os_error(libc::EPIPE);
        let Some(ns) = self.host_forks.as_ref().filter(|_| !self.launcher_gone.load(Ordering::Acquire)) else {
            return Err((gone(), None));
        };
        let child = sys::child::fork_exec_here(spec, ns).map_err(|(e, spec)| (e, Some(spec)))?;
        let pidfd = Arc::new(child.pidfd);
        self.forked.lock().expect("forked children").insert(id, Forked { pidfd: pidfd.clone(), pid: child.pid });
        self.started_here.fetch_add(1, Ordering::Relaxed);
        Ok(ForkedHere { pid: child.pid, announce: child.announce, pidfd })
    }
    /// Lets the reactor reap a host-forked child (its port's owner stopped polling it).
    pub(crate) fn watch_exit(&self, pidfd: BorrowedFd<'_>, id: u64) -> io::Result<()> {
        self.registry.register(&mut SourceFd(&pidfd.as_raw_fd()), Token(id as usize | PIDFD_BIT), Interest::READABLE)
    }

    /// Reaps port `id`'s host-forked child if it has exited: its raw wait status and whether
    /// members of its process group outlive it. Whoever sees its pidfd readable calls this.
    pub(crate) fn reap_forked(&self, id: u64) -> Option<(i32, bool)> {
        let mut forked = self.forked.lock().expect("forked children");
        let c = forked.get(&id)?;
        let raw = match sys::signal::reap_pidfd(c.pidfd.as_fd()) {
            Ok(Some(raw)) => raw,
            Ok(None) => return None,
            // Reaped by someone else (a `waitpid(-1)` elsewhere in the host, or the kernel
            // after the host set `SIGCHLD` to `SIG_IGN`): its status is lost. Reported as
            // killed, so that the port still ends.
            Err(_) => libc::SIGKILL,
        };
        let c = forked.remove(&id).expect("looked up above");
        drop(forked);
        // Once its leader is reaped a group can only shrink. (The pidfd leaves the reactor's
        // epoll by itself when its last holder closes it.)
        let group_left = sys::signal::kill_group(c.pid, 0).is_ok();
        Some((raw, group_left))
    }

    /// Registers a port's fd under its id, for reading, and for writing if `write`: on a Unix
    /// socket every read by the program would raise a writability edge, so a port asks for
    /// those only while output is queued ([`Engine::want_write`]).
    pub(crate) fn register(&self, fd: BorrowedFd<'_>, id: u64, write: bool) -> io::Result<()> {
        let interest = if write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        self.registry.register(&mut SourceFd(&fd.as_raw_fd()), Token(id as usize), interest)
    }

    /// Takes a port's socket or pidfd out of the reactor, when the port is lent to its owner's
    /// thread, so that a reply wakes only the owner polling it. The lending is timed
    /// ([`Engine::still_lent`]): if the owner does not poll within [`LEND_FOR`], the reactor
    /// hands the port to [`Dispatch::lend_expired`], so a port's output and exit never wait
    /// unread for long whatever its owner does.
    pub(crate) fn deregister(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.registry.deregister(&mut SourceFd(&fd.as_raw_fd()))
    }

    /// Starts or restarts the lending period of a lent port, which its owner just polled.
    pub(crate) fn still_lent(&self, id: u64) {
        let mut lent = self.lent.lock().expect("lent ports");
        lent.insert(id, Instant::now());
        if !self.lent_timer_armed.swap(true, Ordering::AcqRel) {
            let _ = sys::fd::timer_arm(self.lent_timer.as_fd(), LEND_FOR);
        }
    }

    /// A lent port went back to the reactor: its lending period ends. The timer is left armed:
    /// it fires once more, finds nothing, and stays off until the next lending. Disarming it
    /// here would cost every short-lived port two timer reprogrammings (VM exits on virtual
    /// machines), about 5 % of a one-at-a-time spawn.
    pub(crate) fn unlend(&self, id: u64) {
        self.lent.lock().expect("lent ports").remove(&id);
    }

    /// Hands back lent ports whose owner has not polled them for [`LEND_FOR`].
    fn take_back_lent(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.lent_timer, &mut buf);
        self.lent_timer_armed.store(false, Ordering::Release);
        let now = Instant::now();
        let due: Vec<u64> = {
            let mut lent = self.lent.lock().expect("lent ports");
            let mut due = Vec::new();
            lent.retain(|&id, &mut t| {
                let keep = now - t < LEND_FOR;
                if !keep {
                    due.push(id);
                }
                keep
            });
            if !lent.is_empty() {
                // A full period, not until the youngest port is due: at most one wake-up per
                // period while ports come and go (one spawn after another lends each).
                self.lent_timer_armed.store(true, Ordering::Release);
                let _ = sys::fd::timer_arm(self.lent_timer.as_fd(), LEND_FOR);
            }
            due
        };
        for id in due {
            self.dispatch.lend_expired(id);
        }
    }

    /// Turns writability events of a port's fd on or off.
    pub(crate) fn want_write(&self, fd: BorrowedFd<'_>, id: u64, on: bool) -> io::Result<()> {
        let interest = if on { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        self.registry.reregister(&mut SourceFd(&fd.as_raw_fd()), Token(id as usize), interest)
    }

    /// Asks the reactor to read from a port whose read window has room again.
    pub(crate) fn resume(&self, id: u64) {
        self.resume.lock().expect("resume list").push(id);
        let _ = self.waker.wake();
    }

    /// Asks the launcher to start a child for port `id` and returns at once, as OTP's
    /// `open_port` does with its forker: the launcher's reply reaches the port later
    /// ([`ChildNews::Spawned`] or [`ChildNews::SpawnFailed`]), so a caller opening many ports
    /// keeps many spawns in flight. Fails only if the request cannot be sent.
    pub(crate) fn spawn(&self, id: u64, spec: sys::child::Exec, child: OwnedFd) -> io::Result<()> {
        if self.launcher_gone.load(Ordering::Acquire) {
            return Err(io::Error::from_raw_os_error(libc::EPIPE));
        }
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().expect("pending").insert(req, id);
        let msg = ToLauncher::Spawn { req, spec, io: child };
        let sent = {
            let _g = self.send_lock.lock().expect("send lock");
            sys::msg::send_fds(self.sock.as_fd(), &msg.encode(), &msg.fds())
        };
        // The host's copies of the child's socket and of the file to exec go now.
        drop(msg);
        if let Err(e) = sent {
            self.pending.lock().expect("pending").remove(&req);
            return Err(e);
        }
        self.started_by_launcher.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn post(&self, req: ToLauncher) {
        if let Some(tx) = self.outbox.lock().expect("outbox").as_ref() {
            let _ = tx.send(req);
        }
    }

    /// Hands a child whose port is gone to the kill ladder. `pid` is as the launcher sees it;
    /// `forked_here`: the host forked it, so the launcher has no record of it.
    pub(crate) fn release(&self, pid: i32, grace: (Duration, Duration), forked_here: bool) {
        if pid > 0 {
            let ms = |d: Duration| d.as_millis().min(u32::MAX as u128) as u32;
            self.post(ToLauncher::Release { pid, term_ms: ms(grace.0), kill_ms: ms(grace.1), foreign: forked_here });
        }
    }

    /// Sends a signal to a child (or its group).
    pub(crate) fn signal(&self, pid: i32, sig: i32, group: bool) {
        if pid > 0 {
            self.post(ToLauncher::Signal { pid, sig, group });
        }
    }

    fn on_launcher_event(&self, ev: FromLauncher, sender: Option<i32>) {
        match ev {
            FromLauncher::Spawned { req, pid, host_pid, errno } => {
                // A reply sent with the child's credentials arrives with the child's pid as
                // this process sees it; otherwise (no namespace) the pids are the same.
                let host_pid = sender.filter(|&p| p != self.launcher.pid).unwrap_or(host_pid);
                let Some(id) = self.pending.lock().expect("pending").remove(&req) else { return };
                if errno == 0 {
                    self.pids.lock().expect("pids").insert(pid, id);
                    self.dispatch.child(id, ChildNews::Spawned { ns_pid: pid, host_pid });
                } else {
                    self.dispatch.child(id, ChildNews::SpawnFailed(errno));
                }
            }
            FromLauncher::Exited { pid, status, group_left } => {
                let id = self.pids.lock().expect("pids").remove(&pid);
                if let Some(id) = id {
                    self.dispatch.child(id, ChildNews::Exited { raw: status, group_left });
                }
            }
        }
    }

    fn on_launcher_gone(&self) {
        self.launcher_gone.store(true, Ordering::Release);
        // The launcher died before the host: in the cgroup tier its descendants, escapees
        // included, are still in the group; end them all.
        if let Some(dir) = &self.cgroup {
            sys::cgroup::kill_and_remove(dir);
        }
        let pending: Vec<u64> = self.pending.lock().expect("pending").drain().map(|(_, id)| id).collect();
        for id in pending {
            self.dispatch.child(id, ChildNews::SpawnFailed(libc::EPIPE));
        }
        let running: Vec<u64> = self.pids.lock().expect("pids").drain().map(|(_, id)| id).collect();
        for id in running {
            self.dispatch.child(id, ChildNews::Exited { raw: libc::SIGKILL, group_left: false });
        }
    }
}

fn reactor(mut poll: Poll) {
    let mut events = Events::with_capacity(1024);
    let mut shared = BytesMut::with_capacity(1 << 16);
    let mut lbuf = Vec::new();
    let mut lfds = VecDeque::new();
    let engine = loop {
        // The engine is stored once `start` returns; wait for it.
        if let Some(e) = started() {
            break e;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let readable = Ready { readable: true, writable: false };
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        for ev in events.iter() {
            match ev.token() {
                LENT_TIMER => engine.take_back_lent(),
                WAKER => {
                    let ids = std::mem::take(&mut *engine.resume.lock().expect("resume list"));
                    for id in ids {
                        engine.dispatch.io_ready(id, readable, &mut shared);
                    }
                }
                LAUNCHER => loop {
                    match sys::msg::recv_some(engine.sock.as_fd(), &mut lbuf, &mut lfds, true) {
                        Ok((0, _)) => {
                            let _ = engine.registry.deregister(&mut SourceFd(&engine.sock.as_raw_fd()));
                            engine.on_launcher_gone();
                            break;
                        }
                        Ok((_, sender)) => {
                            lfds.clear();
                            // Replies with other credentials are never merged into one read,
                            // and a record split across reads keeps the credentials it began with.
                            for body in crate::launcher::proto::split_records(&mut lbuf) {
                                if let Some(ev) = FromLauncher::decode(&body) {
                                    engine.on_launcher_event(ev, sender);
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // ECONNRESET: the launcher died with requests of ours unread.
                        Err(_) => {
                            let _ = engine.registry.deregister(&mut SourceFd(&engine.sock.as_raw_fd()));
                            engine.on_launcher_gone();
                            break;
                        }
                    }
                },
                Token(t) if t & PIDFD_BIT != 0 => {
                    let id = (t & !PIDFD_BIT) as u64;
                    if let Some((raw, group_left)) = engine.reap_forked(id) {
                        engine.dispatch.child(id, ChildNews::Exited { raw, group_left });
                    }
                }
                Token(t) => {
                    let ready = Ready {
                        readable: ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                        writable: ev.is_writable() || ev.is_error() || ev.is_write_closed(),
                    };
                    engine.dispatch.io_ready(t as u64, ready, &mut shared);
                }
            }
        }
    }
}
