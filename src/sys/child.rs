//! Fork and exec of one port program, called only inside the launcher (single-threaded,
//! without signal handlers). The child calls only async-signal-safe functions between the
//! clone and `execve`, with every string prepared beforehand.

use std::ffi::CString;
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

/// Pointers the child reads; everything they point to is owned by the caller's frame.
struct Shared<'a> {
    spec: &'a ChildSpec,
    announce: &'a std::sync::atomic::AtomicI32,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cd_msg: Vec<u8>,
}

/// The stack a child runs on until it execs: reused from spawn to spawn (the launcher waits
/// for each exec), which saves zeroing a fresh one each time.
pub(crate) struct ChildStack(Box<[u8]>);

impl ChildStack {
    pub(crate) fn new() -> Self {
        ChildStack(vec![0u8; 64 * 1024].into_boxed_slice())
    }
}

/// Forks and execs `spec` the way `posix_spawn` does (`clone(CLONE_VM | CLONE_VFORK)`: no
/// page-table copy, the launcher waits until the child has exec'd); returns the child's pid.
/// Exec failures show up later as the child's exit status (`errno`), as in OTP.
///
/// Before it execs, the child stores its pid in `announce`: from then on it may exit and be
/// seen by a reaper on another thread, which must know it is a child being registered.
pub(crate) fn fork_exec(
    spec: &ChildSpec,
    stack: &mut ChildStack,
    announce: &std::sync::atomic::AtomicI32,
) -> io::Result<i32> {
    let mut cd_msg = b"spawn: Could not cd to ".to_vec();
    if let Some(cd) = &spec.cd {
        cd_msg.extend_from_slice(cd.as_bytes());
    }
    cd_msg.extend_from_slice(b"\r\n");
    let shared = Shared { spec, announce, argv: ptrs(&spec.argv), envp: ptrs(&spec.envp), cd_msg };
    let stack = &mut stack.0;
    // The stack grows down on every Linux target beamport supports; keep it 16-byte aligned.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    // SAFETY: `child_main` runs on its own stack (`stack`, borrowed mutably until clone
    // returns, which with CLONE_VFORK is after the child has exec'd or exited, so no other
    // spawn can use it meanwhile) and shares our memory: it only
    // reads `shared` and calls async-signal-safe functions, then execs or `_exit`s. Without
    // CLONE_FILES, CLONE_FS and CLONE_SIGHAND its fd table, cwd and signal dispositions are
    // its own. The launcher has no signal handlers (it uses a signalfd), so nothing can run
    // on the child's stack but `child_main`.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &shared as *const Shared<'_> as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Shared` that `fork_exec` passed, alive while it waits for us
    // (CLONE_VFORK). Every call below is async-signal-safe and every pointer refers to memory
    // owned by `fork_exec`'s caller.
    unsafe {
        let sh = &*(arg as *const Shared<'_>);
        let spec = sh.spec;
        // Before anything can make it exit: an atomic store in memory the launcher shares.
        sh.announce.store(libc::getpid(), std::sync::atomic::Ordering::SeqCst);
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
                libc::write(2, sh.cd_msg.as_ptr().cast(), sh.cd_msg.len());
                libc::_exit(e);
            }
        }
        let io = libc::fcntl(spec.io.as_raw_fd(), libc::F_DUPFD, 10);
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
        libc::execve(spec.program.as_ptr(), sh.argv.as_ptr(), sh.envp.as_ptr());
        libc::_exit(*libc::__errno_location())
    }
}

/// Builds a C string, refusing interior NULs with `InvalidInput`.
pub(crate) fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument"))
}
