//! The launcher process: forks every child, reaps it, reports its exit, runs kill ladders,
//! and ends every descendant when the host goes away.
//!
//! Its main loop is event-driven: `poll` on the control socket and a `signalfd` (`SIGCHLD`,
//! and `SIGTERM`/`SIGINT`/`SIGHUP`, which mean "the host is gone": the host's death signal is
//! `SIGTERM`), with the nearest ladder deadline as the timeout. Forks happen on [`SPAWNERS`]
//! spawner threads: `clone(CLONE_VFORK)` blocks its caller until the child has exec'd, and
//! with one caller the execs of a burst of spawns would run one after another on one CPU.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::proto::{FromLauncher, Refused, ToLauncher};
use crate::sys;

/// How soon the main loop looks again at a child it could not reap yet (see `reap`).
const REAP_RETRY: Duration = Duration::from_micros(200);

/// How long children get, after the host is gone, between SIGTERM and SIGKILL.
const HOST_GONE_KILL_AFTER: Duration = Duration::from_millis(500);

struct Ladder {
    term_at: Instant,
    kill_at: Instant,
    termed: bool,
}

/// Threads that fork children (see the module's doc).
const SPAWNERS: usize = 2;

/// What the main loop and the spawner threads share: the socket's sending side and the books
/// on children. Every reply is sent under the books' lock, so that replies never interleave
/// and a child's `Spawned` always comes before its `Exited`.
struct Common {
    sock: OwnedFd,
    in_namespace: bool,
    books: Mutex<Books>,
    /// The host is gone: spawners start nothing more.
    stopping: AtomicBool,
    /// Per spawner, and last the main loop's: the pid its child announced before exec, until
    /// the child is registered (see [`Launcher::reap`]).
    announced: [AtomicI32; SPAWNERS + 1],
}

#[derive(Default)]
struct Books {
    children: HashSet<i32>,
    /// Children reaped while their port was open: their process group may live on, and the
    /// host may still signal it or hand it to a ladder when the port closes.
    exited: HashSet<i32>,
    /// Spawn requests handed to spawners and not answered yet.
    in_flight: usize,
}

impl Common {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().expect("launcher books")
    }

    /// Sends `ev`; the caller holds the books' lock.
    fn send(&self, ev: FromLauncher, creds: Option<i32>) {
        let _ = sys::msg::send_all_as(self.sock.as_fd(), &ev.encode(), &[], creds);
    }

    /// A registered child was reaped: report it. `laddered`: the host already handed it to a
    /// kill ladder, which keeps watching its group.
    fn child_exited(&self, b: &mut Books, pid: i32, status: i32, laddered: bool) {
        // Once its leader is reaped a group can only shrink: if it is empty now, the host need
        // not hand it to a ladder later.
        let group_left = sys::signal::kill_group(pid, 0).is_ok();
        if group_left && !laddered {
            b.exited.insert(pid);
        }
        self.send(FromLauncher::Exited { pid, status, group_left }, None);
    }
}

/// One spawn request, with the socket the child talks on.
struct Job {
    req: u64,
    spec: sys::child::Exec,
    io: OwnedFd,
}

/// A spawner thread: forks the jobs it takes, registers each child and replies.
fn spawner(shared: Arc<Common>, jobs: Arc<Mutex<mpsc::Receiver<Job>>>, me: usize, mut stack: sys::child::ChildStack) {
    loop {
        let job = match jobs.lock().expect("spawn jobs").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        shared.start(job, &mut stack, me);
    }
}

impl Common {
    /// Forks `job` on the calling thread (spawner `slot`'s stack and announce slot), then
    /// registers the child and replies. The job was counted in `in_flight`.
    fn start(&self, job: Job, stack: &mut sys::child::ChildStack, slot: usize) {
        let req = job.req;
        let result = if self.stopping.load(Ordering::Acquire) {
            Err(std::io::Error::from_raw_os_error(libc::EPIPE))
        } else {
            spawn(job, stack, &self.announced[slot])
        };
        let mut b = self.books();
        b.in_flight -= 1;
        match result {
            Ok(pid) => {
                b.children.insert(pid);
                b.exited.remove(&pid); // a reused pid names a new group
                                       // Inside a PID namespace the reply carries the child's credentials, which the
                                       // kernel translates into the pid the host sees. The child cannot have been
                                       // reaped yet (see `Launcher::reap`), so its pid still exists.
                let creds = self.in_namespace.then_some(pid);
                self.send(FromLauncher::Spawned { req, pid, host_pid: pid, errno: 0 }, creds);
            }
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                self.send(FromLauncher::Spawned { req, pid: -1, host_pid: -1, errno }, None);
            }
        }
        self.announced[slot].store(0, Ordering::SeqCst);
    }
}

/// Forks and execs `job`'s program; the child's socket is closed here once the child has it.
fn spawn(job: Job, stack: &mut sys::child::ChildStack, announce: &AtomicI32) -> std::io::Result<i32> {
    // The launcher's children die with it (`PR_SET_PDEATHSIG`), also outside a PID namespace.
    let exec = sys::child::Exec { death_signal: Some(sys::signal::SIGKILL), ..job.spec };
    sys::child::fork_exec(&sys::child::ChildSpec { exec, io: job.io }, stack, announce)
}

/// Signals `pid`'s process group, or `pid` alone if it has no group yet: a child the host
/// forked makes its group (`setsid`) after the host's `Port::open` has returned, and may be
/// released before it has.
fn group_or_leader(pid: i32, sig: i32) -> std::io::Result<()> {
    sys::signal::kill_group(pid, sig).or_else(|_| sys::signal::kill(pid, sig))
}

struct Launcher {
    shared: Arc<Common>,
    jobs: mpsc::Sender<Job>,
    cgroup: Option<std::path::PathBuf>,
    ladders: HashMap<i32, Ladder>,
    /// Ladder deadlines, earliest first; an entry that no longer matches its ladder is stale.
    due: BinaryHeap<Reverse<(Instant, i32)>>,
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    /// The main loop's own child stack, for spawns while nothing else runs.
    stack: sys::child::ChildStack,
}

/// Runs the launcher on its control socket until the host is gone; returns the exit code.
pub(crate) fn run(sock: OwnedFd) -> i32 {
    sys::start::launcher_caps();
    let in_namespace = rustix::process::getpid().as_raw_nonzero().get() == 1;
    let cgroup = std::env::var_os(sys::cgroup::CGROUP_ENV).map(std::path::PathBuf::from);
    std::env::remove_var(sys::cgroup::CGROUP_ENV);
    if let Some(dir) = &cgroup {
        if let Err(e) = sys::cgroup::join(dir) {
            eprintln!("beamport launcher: cannot join {}: {e}", dir.display());
        }
    }
    let _ = sys::signal::become_subreaper();
    let sigfd = match sys::signal::signal_fd(&[
        sys::signal::SIGCHLD,
        sys::signal::SIGTERM,
        sys::signal::SIGINT,
        sys::signal::SIGHUP,
    ]) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("beamport launcher: signalfd: {e}");
            return 1;
        }
    };
    let shared = Arc::new(Common {
        sock,
        in_namespace,
        books: Mutex::new(Books::default()),
        stopping: AtomicBool::new(false),
        announced: std::array::from_fn(|_| AtomicI32::new(0)),
    });
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..SPAWNERS {
        let (shared, rx) = (shared.clone(), rx.clone());
        // A child's death signal fires when the *thread* that forked it ends: spawners live as
        // long as the launcher.
        let started = sys::child::ChildStack::new().and_then(|stack| {
            std::thread::Builder::new().name(format!("spawner-{i}")).spawn(move || spawner(shared, rx, i, stack))
        });
        if let Err(e) = started {
            eprintln!("beamport launcher: cannot start a spawner: {e}");
            return 1;
        }
    }
    let stack = match sys::child::ChildStack::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("beamport launcher: cannot map a child stack: {e}");
            return 1;
        }
    };
    let mut l = Launcher {
        shared,
        jobs: tx,
        cgroup,
        ladders: HashMap::new(),
        due: BinaryHeap::new(),
        buf: Vec::new(),
        fds: VecDeque::new(),
        stack,
    };
    let mut deferred = false;
    loop {
        let mut timeout = l.next_deadline().map(|d| d.saturating_duration_since(Instant::now()));
        if deferred {
            timeout = Some(timeout.map_or(REAP_RETRY, |t| t.min(REAP_RETRY)));
        }
        let ts =
            timeout.map(|t| rustix::time::Timespec { tv_sec: t.as_secs() as i64, tv_nsec: t.subsec_nanos() as i64 });
        let mut pfds = [
            rustix::event::PollFd::new(&l.shared.sock, rustix::event::PollFlags::IN),
            rustix::event::PollFd::new(&sigfd, rustix::event::PollFlags::IN),
        ];
        match rustix::event::poll(&mut pfds, ts.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                eprintln!("beamport launcher: poll: {e}");
                break;
            }
        }
        let (sock_ready, sig_ready) = (!pfds[0].revents().is_empty(), !pfds[1].revents().is_empty());
        if sig_ready || deferred {
            let sigs = if sig_ready { sys::signal::read_signals(&sigfd) } else { Vec::new() };
            deferred = l.reap();
            if sigs.iter().any(|&s| s != sys::signal::SIGCHLD) {
                break;
            }
        }
        if sock_ready && !l.read_requests() {
            break;
        }
        l.run_ladders();
    }
    l.host_gone(&sigfd);
    0
}

impl Launcher {
    fn next_deadline(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    /// Reads and handles what requests have arrived; false when the host closed the socket.
    /// A read ends after a request that carries a socket, so pipelined spawns need several;
    /// a bound on them keeps exits and ladders served during a burst.
    fn read_requests(&mut self) -> bool {
        for _ in 0..64 {
            match sys::msg::recv_some(self.shared.sock.as_fd(), &mut self.buf, &mut self.fds, true) {
                Ok((0, _)) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
            for body in super::proto::split_records(&mut self.buf) {
                match ToLauncher::decode(&body, &mut self.fds) {
                    Ok(req) => self.handle(req),
                    Err(Refused::MissingFds { req }) => {
                        let _b = self.shared.books();
                        let errno = libc::EBADF;
                        self.shared.send(FromLauncher::Spawned { req, pid: -1, host_pid: -1, errno }, None);
                    }
                    Err(Refused::Malformed) => eprintln!("beamport launcher: malformed request"),
                }
            }
        }
        true
    }

    fn handle(&mut self, req: ToLauncher) {
        match req {
            ToLauncher::Spawn { req, spec, io } => {
                let idle = {
                    let mut b = self.shared.books();
                    b.in_flight += 1;
                    b.in_flight == 1 && b.children.is_empty()
                };
                let job = Job { req, spec, io };
                if idle {
                    // Nothing else runs: a spawner would only add a thread hop (a wake-up) to a
                    // one-at-a-time caller's every spawn. Fork here.
                    self.shared.start(job, &mut self.stack, SPAWNERS);
                    return;
                }
                // The spawners are gone only when the host is: the job's socket closes with it.
                let sent = self.jobs.send(job).is_ok();
                if !sent {
                    let mut b = self.shared.books();
                    b.in_flight -= 1;
                    self.shared.send(FromLauncher::Spawned { req, pid: -1, host_pid: -1, errno: libc::EPIPE }, None);
                }
            }
            ToLauncher::Signal { pid, sig, group } => {
                let b = self.shared.books();
                let known = b.children.contains(&pid) || self.ladders.contains_key(&pid);
                if known || (group && b.exited.contains(&pid)) {
                    let _ = if group { sys::signal::kill_group(pid, sig) } else { sys::signal::kill(pid, sig) };
                }
            }
            ToLauncher::Release { pid, term_ms, kill_ms, foreign } => {
                // A child that exited may have left members in its group, which may hold the
                // port's socket: they get the ladder too. A child the host forked is in our
                // namespace but not in the books: its group gets the ladder while it exists.
                let mut b = self.shared.books();
                let leftovers = b.exited.remove(&pid) && sys::signal::kill_group(pid, 0).is_ok();
                // (Or, just after its fork, the child alone: it has not made its group yet.)
                let foreign = foreign && self.shared.in_namespace && group_or_leader(pid, 0).is_ok();
                if b.children.contains(&pid) || leftovers || foreign {
                    let term_at = Instant::now() + Duration::from_millis(term_ms.into());
                    let kill_at = term_at + Duration::from_millis(kill_ms.into());
                    self.ladders.insert(pid, Ladder { term_at, kill_at, termed: false });
                    self.due.push(Reverse((term_at, pid)));
                }
            }
        }
    }

    /// Reaps what exited; true if a child was left for later because its spawner has not
    /// registered it yet (it exited within microseconds of its exec: the main loop retries
    /// shortly). Exited children are looked at before they are reaped, so that a child is
    /// never reaped unregistered: its spawner's reply needs its pid to still exist (the
    /// `SCM_CREDENTIALS` translation), and its exit must be reported after that reply.
    fn reap(&mut self) -> bool {
        while let Some(pid) = sys::signal::peek_exited() {
            let mut b = self.shared.books();
            if !b.children.contains(&pid) && self.shared.announced.iter().any(|a| a.load(Ordering::SeqCst) == pid) {
                return true;
            }
            let Some(status) = sys::signal::reap_pid(pid) else { continue };
            if b.children.remove(&pid) {
                // A released child that exited keeps its ladder: its group may live on.
                self.shared.child_exited(&mut b, pid, status, self.ladders.contains_key(&pid));
            } // else an orphan we adopted as subreaper
        }
        false
    }

    fn run_ladders(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((t, pid))) = self.due.peek() {
            if t > now {
                break;
            }
            self.due.pop();
            let Some(l) = self.ladders.get_mut(&pid) else { continue };
            if !l.termed && t == l.term_at {
                l.termed = true;
                if group_or_leader(pid, sys::signal::SIGTERM).is_err() {
                    self.ladders.remove(&pid); // the group is empty
                } else {
                    self.due.push(Reverse((l.kill_at, pid)));
                }
            } else if l.termed && t == l.kill_at {
                let _ = group_or_leader(pid, sys::signal::SIGKILL);
                self.ladders.remove(&pid);
            }
        }
    }

    /// The host is gone: every descendant gets SIGTERM now and SIGKILL shortly after.
    fn host_gone(&mut self, sigfd: &OwnedFd) {
        // No new children; let the spawns under way finish, so that the sweep reaches them.
        // The spawner threads stay: a child's death signal (SIGKILL) fires when the thread
        // that forked it ends, which must not cut the SIGTERM-first sweep below short.
        self.shared.stopping.store(true, Ordering::Release);
        let deadline = Instant::now() + HOST_GONE_KILL_AFTER;
        while self.shared.books().in_flight > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.signal_all(sys::signal::SIGTERM);
        let deadline = Instant::now() + HOST_GONE_KILL_AFTER;
        while Instant::now() < deadline {
            let _ = sys::signal::read_signals(sigfd);
            if !self.has_descendants() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.signal_all(sys::signal::SIGKILL);
        // A killed parent's escaped children are re-parented to us (the subreaper) only as it
        // dies, possibly after the scan above: keep killing what arrives until none is left.
        let deadline = Instant::now() + HOST_GONE_KILL_AFTER;
        while !self.shared.in_namespace && self.has_descendants() && Instant::now() < deadline {
            for pid in orphans() {
                let _ = sys::signal::kill(pid, sys::signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        while sys::signal::reap_any().is_some() {}
        if let Some(dir) = &self.cgroup {
            // Out of the group first, then one write ends every member, escapees included.
            if let Some(parent) = dir.parent() {
                let _ = sys::cgroup::join(parent);
            }
            sys::cgroup::kill_and_remove(dir);
        }
    }

    fn has_descendants(&self) -> bool {
        // In a PID namespace the host's own children count too (it forks some there itself):
        // they are never ours to reap (the host's, then its namespace's reaper's), so only
        // `kill(-1, 0)` finds them, with anything else left in the namespace.
        sys::signal::reap_all_children_remain() || (self.shared.in_namespace && sys::signal::kill(-1, 0).is_ok())
    }

    fn signal_all(&self, sig: i32) {
        if self.shared.in_namespace {
            // PID 1 of the namespace: -1 reaches every other process in it, escapees included.
            let _ = sys::signal::kill(-1, sig);
            return;
        }
        let b = self.shared.books();
        for &pid in b.children.iter().chain(self.ladders.keys()) {
            let _ = sys::signal::kill_group(pid, sig);
        }
        // Descendants that escaped their group were re-parented to us (subreaper).
        for pid in orphans() {
            let _ = sys::signal::kill(pid, sig);
        }
    }
}

/// Processes whose parent is this launcher (found through `/proc`).
fn orphans() -> Vec<i32> {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned)))
                .flatten()
                .and_then(|pp| pp.parse::<i32>().ok())
                == Some(me)
        })
        .collect()
}
