//! The spawn driver: a program behind a port (`{:spawn, cmd}`, `{:spawn_executable, path}`),
//! talking on one socket, its stdin and stdout. It is forked by the opening thread itself,
//! into the launcher's PID namespace, where the host may (as `posix_spawn` would), else by
//! the launcher; either way the launcher ends it when the host is gone, and runs its kill
//! ladder when its port is.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use super::{Driver, Start};
use crate::engine::{self, Engine};
use crate::sys;
use crate::sys::child::{ChildSpec, Exec};

/// `SO_SNDBUF` of the program's end of its socket: how much of its output the kernel holds
/// for the host (the read window bounds what the host holds).
const SOCKET_BUFFER: usize = 1 << 20;

/// A program behind a port.
pub(crate) struct SpawnDriver {
    /// The host's end of the port's socket; shared with an owner thread polling it, which
    /// keeps it open until its poll returns.
    sock: Option<Arc<OwnedFd>>,
    /// Until [`Driver::start`]: what the child execs, and its end of the socket.
    plan: Option<Box<(Exec, OwnedFd)>>,
    child: Child,
    /// The kill ladder's grace periods once the port is gone: SIGTERM after the first,
    /// SIGKILL after the second.
    grace: (Duration, Duration),
    /// The opening thread forks the program ([`Engine::fork_here`]), not the launcher.
    fork_here: bool,
    /// Handed to the kill ladder already (at the port's close, even with output queued).
    released: bool,
}

/// Where the program is in its life.
enum Child {
    /// Asked of the launcher, which has not answered. Signals asked for meanwhile go out
    /// once it has.
    Pending { early: Vec<(i32, bool)> },
    /// Started (and perhaps ended since: `exited`).
    Started {
        /// Its pid in the launcher's namespace, where the launcher signals it (0 until known:
        /// a program forked here stores it itself, first thing).
        ns_pid: i32,
        /// Its pid in the host's namespace.
        host_pid: i32,
        /// Forked by a host thread: the host reaps and signals it itself.
        here: Option<ForkedHere>,
        /// Reaped; whether members of its process group outlive it.
        exited: Option<bool>,
    },
    /// It could not be started.
    Failed,
}

/// What the host keeps of a program it forked itself.
struct ForkedHere {
    /// Where it stores its pid in the launcher's namespace.
    announce: Arc<AtomicI32>,
    /// Its pidfd, until reaped.
    pidfd: Option<Arc<OwnedFd>>,
}

impl SpawnDriver {
    /// Prepares `exec` behind a new socket pair; it starts at [`Driver::start`]. The kernel
    /// holds up to about `send_buffer` bytes of output for the program (`SO_SNDBUF`), before
    /// the port's own queue, and its busy limits, take the rest.
    pub(crate) fn new(
        engine: &Engine,
        exec: Exec,
        grace: (Duration, Duration),
        send_buffer: usize,
    ) -> io::Result<SpawnDriver> {
        let (host, child) = sys::fd::stream_pair()?;
        sys::fd::set_nonblocking(host.as_fd(), true)?;
        // Bigger socket buffers mean fewer wake-ups on bulk transfers; the kernel allocates
        // them only as data is queued, so idle ports cost nothing more.
        sys::fd::set_send_buffer(host.as_fd(), send_buffer);
        sys::fd::set_send_buffer(child.as_fd(), SOCKET_BUFFER);
        let fork_here = engine.host_may_fork(child.as_fd());
        Ok(SpawnDriver {
            sock: Some(Arc::new(host)),
            plan: Some(Box::new((exec, child))),
            child: Child::Pending { early: Vec::new() },
            grace,
            fork_here,
            released: false,
        })
    }

    /// Whether the opening thread forks the program (then it is likely to wait for it next,
    /// and the port starts lent to it).
    pub(crate) fn forks_here(&self) -> bool {
        self.fork_here
    }

    /// The program's pid in the launcher's namespace, or -1 if it has none (yet, or any
    /// more). A program forked here learns it itself, maybe after `Port::open` returned; a
    /// port closed before then asks the kernel.
    fn ns_pid(&mut self) -> i32 {
        match &mut self.child {
            Child::Started { ns_pid, .. } if *ns_pid > 0 => *ns_pid,
            Child::Started { ns_pid, here: Some(h), .. } => {
                let pidfd = h.pidfd.as_ref().map(|p| p.as_fd());
                *ns_pid = sys::child::ns_pid(&h.announce, pidfd).unwrap_or(-1);
                *ns_pid
            }
            _ => -1,
        }
    }
}

/// The host's working directory, which a program the launcher forks starts in.
fn current_dir() -> Option<std::ffi::CString> {
    let dir = std::env::current_dir().ok()?.into_os_string().into_vec();
    std::ffi::CString::new(dir).ok()
}

fn engine() -> Option<&'static Engine> {
    engine::started()
}

impl Driver for SpawnDriver {
    fn write(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &self.sock {
            Some(fd) => sys::fd::send_vectored(fd.as_fd(), bufs),
            None => Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }

    fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match &self.sock {
            Some(fd) => sys::fd::read_into(fd.as_fd(), buf),
            None => Ok(0),
        }
    }

    fn shutdown_write(&mut self) {
        if let Some(fd) = &self.sock {
            let _ = sys::fd::shutdown_write(fd.as_fd());
        }
    }

    fn shutdown_read(&mut self) {
        if let Some(fd) = &self.sock {
            let _ = sys::fd::shutdown_read(fd.as_fd());
        }
    }

    fn io_fd(&self) -> Option<&Arc<OwnedFd>> {
        self.sock.as_ref()
    }

    fn close_io(&mut self) {
        if let Some(fd) = self.sock.take() {
            sys::fd::close_quietly(fd.as_fd());
        }
        self.plan = None;
    }

    fn start(&mut self, id: u64) -> io::Result<Start> {
        let Some(plan) = self.plan.take() else { return Ok(Start::Failed(libc::EINVAL)) };
        let (mut exec, mut io) = *plan;
        let engine = engine().ok_or_else(|| io::Error::from_raw_os_error(libc::EPIPE))?;
        if self.fork_here {
            // Under the port's lock: the reactor may reap the child before this records it.
            match engine.fork_here(id, ChildSpec { exec, io }) {
                Ok(f) => {
                    let here = ForkedHere { announce: f.announce, pidfd: Some(f.pidfd) };
                    self.child = Child::Started { ns_pid: 0, host_pid: f.pid, here: Some(here), exited: None };
                    return Ok(Start::Running);
                }
                // No fd for the pidfd, or too many children of the host's between fork and
                // exec: the launcher forks it (at one fd per port).
                Err((e, Some(spec)))
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN)) =>
                {
                    self.fork_here = false;
                    ChildSpec { exec, io } = *spec;
                }
                Err((e, _)) => {
                    self.child = Child::Failed;
                    return Ok(Start::Failed(e.raw_os_error().unwrap_or(libc::EIO)));
                }
            }
        }
        // The launcher's children start in the host's working directory, told here.
        exec.cwd = current_dir();
        engine.spawn(id, exec, io)?;
        Ok(Start::Pending)
    }

    fn exit_fd(&self) -> Option<&Arc<OwnedFd>> {
        match &self.child {
            Child::Started { here: Some(h), .. } => h.pidfd.as_ref(),
            _ => None,
        }
    }

    fn spawned(&mut self, ns_pid: i32, host_pid: i32) {
        let Child::Pending { early } = &mut self.child else { return };
        let early = std::mem::take(early);
        self.child = Child::Started { ns_pid, host_pid, here: None, exited: None };
        if let Some(e) = engine() {
            early.into_iter().for_each(|(sig, group)| e.signal(ns_pid, sig, group));
            if self.released {
                // Closed before the launcher answered: the program goes to the kill ladder now.
                e.release(ns_pid, self.grace, false);
            }
        }
    }

    fn spawn_failed(&mut self) {
        self.child = Child::Failed;
    }

    fn exited(&mut self, group_left: bool) {
        if let Child::Started { here, exited, .. } = &mut self.child {
            *exited = Some(group_left);
            if let Some(h) = here {
                h.pidfd = None;
            }
        }
    }

    fn os_pid(&self) -> Option<i32> {
        match self.child {
            Child::Started { host_pid, .. } if host_pid > 0 => Some(host_pid),
            _ => None,
        }
    }

    fn program_pid(&mut self) -> Option<i32> {
        match self.child {
            Child::Started { exited: None, .. } => Some(self.ns_pid()).filter(|&p| p > 0),
            _ => None,
        }
    }

    fn signal(&mut self, sig: i32, group: bool) {
        match &self.child {
            Child::Pending { .. } => {
                if let Child::Pending { early } = &mut self.child {
                    early.push((sig, group));
                }
            }
            Child::Started { host_pid, here: Some(h), exited, .. } => {
                // The host's own child: signalled from here, as the launcher would (a reaped
                // leader's group only if members of it outlived it).
                let _ = match (&h.pidfd, group) {
                    (pidfd, true) if *exited != Some(false) => {
                        // Just after `Port::open` the program may not have made its group
                        // yet: then it is the group.
                        sys::signal::kill_group(*host_pid, sig).or_else(|e| match pidfd {
                            Some(p) => sys::signal::pidfd_kill(p.as_fd(), sig),
                            None => Err(e),
                        })
                    }
                    (Some(p), false) => sys::signal::pidfd_kill(p.as_fd(), sig),
                    _ => Ok(()),
                };
            }
            Child::Started { ns_pid, here: None, .. } => {
                if let Some(e) = engine() {
                    e.signal(*ns_pid, sig, group);
                }
            }
            Child::Failed => {}
        }
    }

    fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let pid = self.ns_pid();
        // Without a pid yet, `spawned` does this.
        let Child::Started { here, exited, .. } = &self.child else { return };
        // The launcher ladders the program, or what is left of its group. A program that
        // exited alone needs nothing (one launcher request less per short-lived port).
        if pid > 0 && *exited != Some(false) {
            if let Some(e) = engine() {
                e.release(pid, self.grace, here.is_some());
            }
        }
    }

    fn expects_news(&self) -> bool {
        match &self.child {
            Child::Pending { .. } => true,
            Child::Started { exited, .. } => exited.is_none(),
            Child::Failed => false,
        }
    }

    fn memory(&self) -> usize {
        match &self.child {
            Child::Pending { early } => early.capacity() * std::mem::size_of::<(i32, bool)>(),
            _ => 0,
        }
    }
}
