//! Fork and exec of one port program. Called only inside the launcher, which is
//! single-threaded, so `fork` is safe there; the child still calls only async-signal-safe
//! functions between `fork` and `execve`, with every string prepared beforehand.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Which child fds the port's socket becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// fds 0 and 1 (OTP's `use_stdio`, the default).
    Stdio,
    /// fds 3 and 4 (OTP's `nouse_stdio`); 0, 1 and 2 are inherited.
    Fd34,
}

/// Everything the child needs, prepared before `fork`.
#[derive(Debug)]
pub(crate) struct ChildSpec {
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: Option<CString>,
    pub cd: Option<CString>,
    pub io: OwnedFd,
    pub layout: Layout,
    /// The port reads the child's output (OTP's `in`).
    pub reads: bool,
    /// The port writes the child's input (OTP's `out`).
    pub writes: bool,
    pub stderr_to_stdout: bool,
    /// Signal the kernel sends the child when the launcher dies.
    pub death_signal: Option<i32>,
}

fn ptrs(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

/// Forks and execs `spec`; returns the child's pid. Exec failures show up later as the
/// child's exit status (`errno`), as in OTP.
pub(crate) fn fork_exec(spec: &ChildSpec) -> io::Result<i32> {
    let argv = ptrs(&spec.argv);
    let envp = ptrs(&spec.envp);
    let mut msg = b"spawn: Could not cd to ".to_vec();
    if let Some(cd) = &spec.cd {
        msg.extend_from_slice(cd.as_bytes());
    }
    msg.extend_from_slice(b"\r\n");
    let io_fd = spec.io.as_raw_fd();
    // SAFETY: the launcher is single-threaded, so the child is a complete copy of a process
    // with no other thread holding a lock. The child branch below calls only
    // async-signal-safe functions on data prepared before the fork, then execs or `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid);
    }
    // SAFETY: child side of fork; see above. Every pointer refers to memory owned by `spec`,
    // `argv`, `envp` or `msg`, all alive in this copy of the address space.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // Rust hosts ignore SIGPIPE; port programs get the default back, so a program that
        // writes to a closed port ends instead of spinning on EPIPE (OTP's E21 fault).
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::setsid();
        if let Some(sig) = spec.death_signal {
            libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0);
        }
        if let Some(cwd) = &spec.cwd {
            libc::chdir(cwd.as_ptr());
        }
        if let Some(cd) = &spec.cd {
            if libc::chdir(cd.as_ptr()) != 0 {
                let e = *libc::__errno_location();
                libc::write(2, msg.as_ptr().cast(), msg.len());
                libc::_exit(e);
            }
        }
        let io = libc::fcntl(io_fd, libc::F_DUPFD, 10);
        if io < 0 {
            libc::_exit(*libc::__errno_location());
        }
        let (rfd, wfd, first_free) = match spec.layout {
            Layout::Stdio => (0, 1, 3),
            Layout::Fd34 => (3, 4, 5),
        };
        if spec.writes {
            libc::dup2(io, rfd);
        }
        if spec.reads {
            libc::dup2(io, wfd);
        }
        if spec.stderr_to_stdout {
            libc::dup2(io, 2);
        }
        libc::syscall(libc::SYS_close_range, first_free as libc::c_uint, libc::c_uint::MAX, 0);
        libc::execve(spec.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        libc::_exit(*libc::__errno_location());
    }
}

/// Builds a C string, refusing interior NULs with `InvalidInput`.
pub(crate) fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument"))
}

/// `CStr` view used in traces.
pub(crate) fn lossy(c: &CStr) -> std::borrow::Cow<'_, str> {
    c.to_string_lossy()
}
