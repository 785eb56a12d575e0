//! Fork and exec of one port program: in the launcher ([`fork_exec`]), or straight from a
//! host thread into the launcher's PID namespace ([`fork_exec_direct`], what `posix_spawn`
//! does, plus a pidfd). The child calls only async-signal-safe functions between the clone
//! and `execve`, with every string prepared beforehand.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

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
    announce: &'a AtomicI32,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cd_msg: Vec<u8>,
    /// The child resets every handled signal to its default itself before it unblocks
    /// signals: a host's handlers must not run on the child's stack (the launcher has none,
    /// and `clone3` with `CLONE_CLEAR_SIGHAND` has the kernel do it).
    reset_signals: bool,
    sigrtmax: libc::c_int,
}

impl<'a> Shared<'a> {
    fn new(spec: &'a ChildSpec, announce: &'a AtomicI32, reset_signals: bool) -> Self {
        let mut cd_msg = b"spawn: Could not cd to ".to_vec();
        if let Some(cd) = &spec.cd {
            cd_msg.extend_from_slice(cd.as_bytes());
        }
        cd_msg.extend_from_slice(b"\r\n");
        Shared {
            spec,
            announce,
            argv: ptrs(&spec.argv),
            envp: ptrs(&spec.envp),
            cd_msg,
            reset_signals,
            sigrtmax: libc::SIGRTMAX(),
        }
    }
}

/// The stack a child runs on until it execs: reused from spawn to spawn (the forking thread
/// waits for each exec), which saves zeroing a fresh one each time.
pub(crate) struct ChildStack(Box<[u8]>);

impl ChildStack {
    pub(crate) fn new() -> Self {
        ChildStack(vec![0u8; 64 * 1024].into_boxed_slice())
    }

    /// The 16-byte-aligned top (stacks grow down on every Linux target beamport supports).
    fn top(&mut self) -> usize {
        (self.0.as_mut_ptr() as usize + self.0.len()) & !15
    }
}

/// Forks and execs `spec` the way `posix_spawn` does (`clone(CLONE_VM | CLONE_VFORK)`: no
/// page-table copy, the launcher waits until the child has exec'd); returns the child's pid.
/// Exec failures show up later as the child's exit status (`errno`), as in OTP. For the
/// launcher only: single-threaded as far as signals go, and without signal handlers.
///
/// Before it execs, the child stores its pid in `announce`: from then on it may exit and be
/// seen by a reaper on another thread, which must know it is a child being registered.
pub(crate) fn fork_exec(spec: &ChildSpec, stack: &mut ChildStack, announce: &AtomicI32) -> io::Result<i32> {
    clone_child(&Shared::new(spec, announce, false), stack, libc::SIGCHLD, std::ptr::null_mut())
}

/// A child started by [`fork_exec_direct`].
#[derive(Debug)]
pub(crate) struct DirectChild {
    /// Its pid as the caller sees it.
    pub pid: i32,
    /// Its pid in its own PID namespace (the launcher's, where the launcher signals it).
    pub ns_pid: i32,
    /// A pidfd: readable once the child has exited; [`crate::sys::signal::reap_pidfd`] reaps it.
    pub pidfd: OwnedFd,
}

/// Forks and execs `spec` from any thread of a multi-threaded host, as `posix_spawn` does,
/// into the PID namespace the thread's children go to (see [`PidNamespace::enter`]). The child
/// is the host's, as a `posix_spawn` child is: its pidfd tells of its exit, and so does a
/// `SIGCHLD` (the clone asks for no exit signal, but `execve` sets it back to `SIGCHLD`), so
/// a `waitpid(-1)` elsewhere in the host can reap it first. Signals stay blocked in the calling
/// thread until the child has exec'd, and every handled signal is reset to its default in the
/// child before it unblocks them, since it shares the host's memory until it execs.
pub(crate) fn fork_exec_direct(spec: &ChildSpec, stack: &mut ChildStack) -> io::Result<DirectChild> {
    let announce = AtomicI32::new(0);
    let mut pidfd: libc::c_int = -1;
    // SAFETY: plain C sigsets, filled before use; `pthread_sigmask` only changes this thread's
    // mask, which is restored below whatever the clone returns.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    let pid = match clone3_clear_sighand(&Shared::new(spec, &announce, false), stack, &mut pidfd) {
        Some(r) => r,
        // No `clone3` with CLONE_CLEAR_SIGHAND here: the child resets each handler itself.
        None => clone_child(&Shared::new(spec, &announce, true), stack, libc::CLONE_PIDFD, &mut pidfd),
    };
    // SAFETY: `old` is the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    let pid = pid?;
    // SAFETY: with CLONE_PIDFD a successful clone stored a new pidfd, owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // The child stored its pid before anything could make it exit, and the clone returned
    // only once it had exec'd or exited (CLONE_VFORK).
    Ok(DirectChild { pid, ns_pid: announce.load(Ordering::SeqCst), pidfd })
}

/// `clone(CLONE_VM | CLONE_VFORK | extra_flags)` running `child_main(shared)`.
fn clone_child(
    shared: &Shared<'_>,
    stack: &mut ChildStack,
    extra_flags: libc::c_int,
    pidfd: *mut libc::c_int,
) -> io::Result<i32> {
    let top = stack.top();
    // SAFETY: `child_main` runs on its own stack (`stack`, borrowed mutably until clone
    // returns, which with CLONE_VFORK is after the child has exec'd or exited, so no other
    // spawn can use it meanwhile) and shares our memory: it only reads `shared` and calls
    // async-signal-safe functions, then execs or `_exit`s. Without CLONE_FILES, CLONE_FS and
    // CLONE_SIGHAND its fd table, cwd and signal dispositions are its own. In the launcher
    // there are no signal handlers (it uses a signalfd); from a host, signals are blocked
    // until the child has reset every handler (`reset_signals`), so nothing can run on the
    // child's stack but `child_main`. `pidfd` is null (no CLONE_PIDFD) or a valid out-pointer.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | extra_flags,
            shared as *const Shared<'_> as *mut libc::c_void,
            pidfd,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// `struct clone_args` of `clone3(2)`, as far as beamport uses it (`CLONE_ARGS_SIZE_VER0`).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Linux ≥ 5.5: the child's handled signals are reset to their defaults.
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND)` running
/// `child_main(shared)`: the kernel resets every handled signal in the child, which saves it
/// one `sigaction` per signal (some 13 µs, a tenth of a spawn's time on the host's side).
/// `None` where this is not available (another architecture, or a kernel before 5.5): the
/// caller falls back to `clone` and has the child reset its handlers itself.
fn clone3_clear_sighand(
    shared: &Shared<'_>,
    stack: &mut ChildStack,
    pidfd: &mut libc::c_int,
) -> Option<io::Result<i32>> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::atomic::AtomicBool;
        static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
        if UNSUPPORTED.load(Ordering::Relaxed) {
            return None;
        }
        let base = stack.0.as_mut_ptr() as usize;
        let mut args = CloneArgs {
            flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64 | CLONE_CLEAR_SIGHAND,
            pidfd: pidfd as *mut libc::c_int as u64,
            child_tid: 0,
            parent_tid: 0,
            exit_signal: 0,
            stack: base as u64,
            stack_size: (stack.top() - base) as u64,
            tls: 0,
        };
        let ret: i64;
        // SAFETY: the raw `clone3` syscall, as glibc's `clone3.S` makes it. In the parent it
        // returns the pid or `-errno` and jumps to `2:`. In the child (rax 0) the kernel has
        // set the stack pointer to the top of `stack`, 16-byte aligned, so the `call` below
        // meets the ABI's alignment; `child_main(shared)` runs there under the same rules as
        // in `clone_child` (see there) and never returns (`execve` or `_exit`); should it,
        // the child exits. The parent is suspended until then (CLONE_VFORK), so `args`,
        // `shared` and `stack` outlive the child's use of them. `r12` and `r13` survive the
        // syscall in both processes (it changes only rax, rcx and r11).
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "xor ebp, ebp",
                "mov rdi, r12",
                "call r13",
                "mov edi, eax",
                "mov eax, 60", // SYS_exit
                "syscall",
                "ud2",
                "2:",
                inlateout("rax") libc::SYS_clone3 => ret,
                in("rdi") &mut args as *mut CloneArgs,
                in("rsi") std::mem::size_of::<CloneArgs>(),
                in("r12") shared as *const Shared<'_> as *mut libc::c_void,
                in("r13") child_main as extern "C" fn(*mut libc::c_void) -> libc::c_int,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        if ret >= 0 {
            return Some(Ok(ret as i32));
        }
        let errno = -ret as i32;
        if errno == libc::ENOSYS || errno == libc::EINVAL {
            UNSUPPORTED.store(true, Ordering::Relaxed);
            return None;
        }
        Some(Err(io::Error::from_raw_os_error(errno)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (shared, stack, pidfd);
        None
    }
}

/// The PID namespace of the launcher, which a host thread enters for the time of one
/// [`fork_exec_direct`] (`setns` changes where the calling thread's *children* go, not the
/// thread itself), so that the child is the launcher's to kill, even when the host is gone.
#[derive(Debug)]
pub(crate) struct PidNamespace {
    target: OwnedFd,
    home: OwnedFd,
}

/// While alive, the calling thread's children are born in the launcher's PID namespace; the
/// thread cannot start threads meanwhile (the kernel refuses `CLONE_THREAD` then).
pub(crate) struct InNamespace<'a>(&'a PidNamespace);

impl PidNamespace {
    /// Opens the PID namespace of process `pid` (as this process sees it), and this process's
    /// own to come back to; checks that this thread may enter it (`CAP_SYS_ADMIN` over it).
    pub(crate) fn of(pid: i32) -> io::Result<PidNamespace> {
        use rustix::fs::{Mode, OFlags};
        let open = |path: String| -> io::Result<OwnedFd> {
            Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?)
        };
        let ns = PidNamespace { target: open(format!("/proc/{pid}/ns/pid"))?, home: open("/proc/self/ns/pid".into())? };
        drop(ns.enter()?);
        Ok(ns)
    }

    /// Sends this thread's future children to the namespace until the guard drops.
    pub(crate) fn enter(&self) -> io::Result<InNamespace<'_>> {
        use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
        move_into_link_name_space(self.target.as_fd(), Some(LinkNameSpaceType::ProcessID))?;
        Ok(InNamespace(self))
    }
}

impl Drop for InNamespace<'_> {
    fn drop(&mut self) {
        use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
        // Back to where the thread's children went before: the host's own namespace, which it
        // may always re-enter (it is an ancestor of the launcher's).
        let _ = move_into_link_name_space(self.0.home.as_fd(), Some(LinkNameSpaceType::ProcessID));
    }
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Shared` that the clone passed, alive while its caller waits for
    // us (CLONE_VFORK). Every call below is async-signal-safe and every pointer refers to
    // memory owned by the forking thread's frame.
    unsafe {
        let sh = &*(arg as *const Shared<'_>);
        let spec = sh.spec;
        // Before anything can make it exit: an atomic store in memory the forker shares.
        sh.announce.store(libc::getpid(), Ordering::SeqCst);
        if sh.reset_signals {
            // As `posix_spawn` does: a handler of the host must not run here, and `execve`
            // would reset them anyway. Ignored signals stay ignored, as across `execve`.
            for sig in 1..=sh.sigrtmax {
                let mut old: libc::sigaction = std::mem::zeroed();
                if sig == libc::SIGKILL || sig == libc::SIGSTOP || libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                {
                    continue;
                }
                if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
                    let mut dfl: libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(sig, &dfl, std::ptr::null_mut());
                }
            }
        }
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

/// Builds a C string (in place), refusing interior NULs with `InvalidInput`.
pub(crate) fn cstring_from(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument"))
}
