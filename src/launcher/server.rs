//! The launcher process: forks every child, reaps it, reports its exit, runs kill ladders,
//! and ends every descendant when the host goes away.
//!
//! It is single-threaded and event-driven: `poll` on the control socket and a `signalfd`
//! (`SIGCHLD`, and `SIGTERM`/`SIGINT`/`SIGHUP`, which mean "the host is gone": the host's death
//! signal is `SIGTERM`), with the nearest ladder deadline as the timeout.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::proto::{flags, Event, Request};
use crate::sys;
use crate::sys::child::{cstring, ChildSpec, Layout};

/// How long children get, after the host is gone, between SIGTERM and SIGKILL.
const HOST_GONE_KILL_AFTER: Duration = Duration::from_millis(500);

struct Ladder {
    term_at: Instant,
    kill_at: Instant,
    termed: bool,
}

struct Launcher {
    sock: OwnedFd,
    in_namespace: bool,
    cgroup: Option<std::path::PathBuf>,
    children: HashMap<i32, ()>,
    /// Children reaped while their port was open: their process group may live on, and the
    /// host may still signal it or hand it to a ladder when the port closes.
    exited: HashSet<i32>,
    ladders: HashMap<i32, Ladder>,
    /// Ladder deadlines, earliest first; an entry that no longer matches its ladder is stale.
    due: BinaryHeap<Reverse<(Instant, i32)>>,
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    stack: sys::child::ChildStack,
}

/// Runs the launcher on its control socket until the host is gone; returns the exit code.
pub(crate) fn run(sock: OwnedFd) -> i32 {
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
    let mut l = Launcher {
        sock,
        in_namespace,
        cgroup,
        children: HashMap::new(),
        exited: HashSet::new(),
        ladders: HashMap::new(),
        due: BinaryHeap::new(),
        buf: Vec::new(),
        fds: VecDeque::new(),
        stack: sys::child::ChildStack::new(),
    };
    loop {
        let timeout = l.next_deadline().map(|d| d.saturating_duration_since(Instant::now()));
        let ts =
            timeout.map(|t| rustix::time::Timespec { tv_sec: t.as_secs() as i64, tv_nsec: t.subsec_nanos() as i64 });
        let mut pfds = [
            rustix::event::PollFd::new(&l.sock, rustix::event::PollFlags::IN),
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
        if sig_ready {
            let sigs = sys::signal::read_signals(&sigfd);
            l.reap();
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
            match sys::msg::recv_some(self.sock.as_fd(), &mut self.buf, &mut self.fds, true) {
                Ok((0, _)) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
            for body in super::proto::split_records(&mut self.buf) {
                match Request::decode(&body) {
                    Some(req) => self.handle(req),
                    None => eprintln!("beamport launcher: malformed request"),
                }
            }
        }
        true
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::Spawn { req, flags: f, program, argv, envp, cwd, cd } => {
                let io = self.fds.pop_front();
                let (pid, errno) = match io {
                    None => (-1, libc::EBADF),
                    Some(io) => match self.spawn(f, &program, &argv, &envp, &cwd, &cd, io) {
                        Ok(pid) => {
                            self.children.insert(pid, ());
                            self.exited.remove(&pid); // a reused pid names a new group
                            (pid, 0)
                        }
                        Err(e) => (-1, e.raw_os_error().unwrap_or(libc::EIO)),
                    },
                };
                // Inside a PID namespace the reply carries the child's credentials, which the
                // kernel translates into the pid the host sees.
                let creds = (self.in_namespace && errno == 0).then_some(pid);
                let ev = Event::Spawned { req, pid, host_pid: pid, errno };
                let _ = sys::msg::send_all_as(self.sock.as_fd(), &ev.encode(), None, creds);
            }
            Request::Signal { pid, sig, group } => {
                let known = self.children.contains_key(&pid) || self.ladders.contains_key(&pid);
                if known || (group && self.exited.contains(&pid)) {
                    let _ = if group { sys::signal::kill_group(pid, sig) } else { sys::signal::kill(pid, sig) };
                }
            }
            Request::Release { pid, term_ms, kill_ms } => {
                // A child that exited may have left members in its group, which may hold the
                // port's socket: they get the ladder too.
                let leftovers = self.exited.remove(&pid) && sys::signal::kill_group(pid, 0).is_ok();
                if self.children.contains_key(&pid) || leftovers {
                    let term_at = Instant::now() + Duration::from_millis(term_ms.into());
                    let kill_at = term_at + Duration::from_millis(kill_ms.into());
                    self.ladders.insert(pid, Ladder { term_at, kill_at, termed: false });
                    self.due.push(Reverse((term_at, pid)));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &mut self,
        f: u32,
        program: &[u8],
        argv: &[Vec<u8>],
        envp: &[Vec<u8>],
        cwd: &[u8],
        cd: &[u8],
        io: OwnedFd,
    ) -> std::io::Result<i32> {
        let opt = |b: &[u8]| if b.is_empty() { Ok(None) } else { cstring(b).map(Some) };
        let spec = ChildSpec {
            program: cstring(program)?,
            argv: argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
            envp: envp.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
            cwd: opt(cwd)?,
            cd: opt(cd)?,
            io,
            layout: if f & flags::NOUSE_STDIO != 0 { Layout::Fd34 } else { Layout::Stdio },
            reads: f & flags::READS != 0,
            writes: f & flags::WRITES != 0,
            stderr_to_stdout: f & flags::STDERR_TO_STDOUT != 0,
            death_signal: Some(sys::signal::SIGKILL),
        };
        sys::child::fork_exec(&spec, &mut self.stack)
    }

    fn reply(&self, ev: Event) {
        let _ = sys::msg::send_all(self.sock.as_fd(), &ev.encode(), None);
    }

    fn reap(&mut self) {
        while let Some((pid, status)) = sys::signal::reap_any() {
            if self.children.remove(&pid).is_some() {
                // Once its leader is reaped a group can only shrink: if it is empty now, the
                // host need not hand it to a ladder later.
                let group_left = sys::signal::kill_group(pid, 0).is_ok();
                if group_left && !self.ladders.contains_key(&pid) {
                    self.exited.insert(pid);
                }
                self.reply(Event::Exited { pid, status, group_left });
            }
            // A released child that exited keeps its ladder: its group may live on.
        }
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
                if sys::signal::kill_group(pid, sys::signal::SIGTERM).is_err() {
                    self.ladders.remove(&pid); // the group is empty
                } else {
                    self.due.push(Reverse((l.kill_at, pid)));
                }
            } else if l.termed && t == l.kill_at {
                let _ = sys::signal::kill_group(pid, sys::signal::SIGKILL);
                self.ladders.remove(&pid);
            }
        }
    }

    /// The host is gone: every descendant gets SIGTERM now and SIGKILL shortly after.
    fn host_gone(&mut self, sigfd: &OwnedFd) {
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
        while !self.in_namespace && self.has_descendants() && Instant::now() < deadline {
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
        sys::signal::reap_all_children_remain()
    }

    fn signal_all(&self, sig: i32) {
        if self.in_namespace {
            // PID 1 of the namespace: -1 reaches every other process in it, escapees included.
            let _ = sys::signal::kill(-1, sig);
            return;
        }
        for &pid in self.children.keys().chain(self.ladders.keys()) {
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
