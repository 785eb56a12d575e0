//! Signals: a pollable `signalfd`, `kill`/`killpg`, and reaping with `waitpid`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A `signalfd` for the given signals, which are blocked for the calling thread so that
/// they are only ever read from the descriptor.
pub(crate) fn signal_fd(signals: &[i32]) -> io::Result<OwnedFd> {
    // SAFETY: `set` is a plain C struct initialised by `sigemptyset` before use; the fd
    // returned by `signalfd` is new and owned by nobody else, so `OwnedFd` may take it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Reads pending signal numbers from a `signalfd` (non-blocking).
pub(crate) fn read_signals(fd: &OwnedFd) -> Vec<i32> {
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    loop {
        // SAFETY: `info` is a plain C struct of the size `signalfd` writes.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is valid for `size` bytes of writes.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n as usize != size {
            return out;
        }
        out.push(info.ssi_signo as i32);
    }
}

/// `kill(pid, sig)`; `sig` 0 only checks that the process exists.
pub(crate) fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: `kill` has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `killpg(pgid, sig)`: signals every process of a group.
pub(crate) fn kill_group(pgid: i32, sig: i32) -> io::Result<()> {
    kill(-pgid, sig)
}

/// Reaps one exited child without blocking: `Some((pid, raw_status))`, or `None` when no
/// child has exited (or there are no children).
pub(crate) fn reap_any() -> Option<(i32, i32)> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// The pid of an exited child, left unreaped (`waitid(WNOWAIT)`), or `None` if none exited.
pub(crate) fn peek_exited() -> Option<i32> {
    // SAFETY: an all-zero `siginfo_t` is valid; `waitid` fills it or leaves `si_pid` 0.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out-pointer for `waitid`.
    let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    // SAFETY: `waitid` succeeded, so `info` holds a SIGCHLD record (or zeros).
    let pid = if r == 0 { unsafe { info.si_pid() } } else { 0 };
    (pid > 0).then_some(pid)
}

/// Reaps `pid` if it has exited: `Some(raw_status)`.
pub(crate) fn reap_pid(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (r == pid).then_some(status)
}

/// Reaps the child behind `pidfd` if it has exited: `Ok(Some(raw_status))`, `Ok(None)` if it
/// runs still. Works for children without an exit signal (`__WALL`).
pub(crate) fn reap_pidfd(pidfd: std::os::fd::BorrowedFd<'_>) -> io::Result<Option<i32>> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero `siginfo_t` is valid; `waitid` fills it or leaves `si_pid` 0.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::__WALL;
    // SAFETY: `info` is a valid out-pointer; `pidfd` is an open fd for the call's duration.
    let r = unsafe { libc::waitid(libc::P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `waitid` succeeded: `info` is a SIGCHLD record, or zeros if nothing exited.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    // Back to the raw wait status the rest of beamport decodes.
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => status | 0x80,
        _ => status,
    }))
}

/// Whether the kernel reaps this process's children by itself when they exit (`SIGCHLD` set
/// to `SIG_IGN`, or a handler with `SA_NOCLDWAIT`): then their exit status cannot be had.
pub(crate) fn children_autoreaped() -> bool {
    // SAFETY: an all-zero `sigaction` is valid; with a null new action `sigaction` only reads
    // the current disposition into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) == 0
            && (old.sa_sigaction == libc::SIG_IGN || old.sa_flags & libc::SA_NOCLDWAIT != 0)
    }
}

/// Sends `sig` to the process behind `pidfd` (which cannot be a reused pid).
pub(crate) fn pidfd_kill(pidfd: std::os::fd::BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    let sig = rustix::process::Signal::from_named_raw(sig).ok_or(io::Error::from_raw_os_error(libc::EINVAL))?;
    rustix::process::pidfd_send_signal(pidfd, sig)?;
    Ok(())
}

/// Reaps every exited child; true while children (exited or not) remain.
pub(crate) fn reap_all_children_remain() -> bool {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => return true,
            p if p > 0 => continue,
            _ => return false,
        }
    }
}

/// Decodes a raw wait status: `Ok(code)` for a normal exit, `Err((signal, core_dumped))`.
pub(crate) fn decode_status(raw: i32) -> Result<i32, (i32, bool)> {
    if libc::WIFEXITED(raw) {
        Ok(libc::WEXITSTATUS(raw))
    } else {
        Err((libc::WTERMSIG(raw), libc::WCOREDUMP(raw)))
    }
}

/// Makes this process the subreaper of its descendants (Linux ≥ 3.4).
pub(crate) fn become_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    Ok(())
}

/// Signal numbers the public API names.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;
pub(crate) const SIGKILL: i32 = libc::SIGKILL;
pub(crate) const SIGCHLD: i32 = libc::SIGCHLD;
pub(crate) const SIGINT: i32 = libc::SIGINT;
pub(crate) const SIGHUP: i32 = libc::SIGHUP;
