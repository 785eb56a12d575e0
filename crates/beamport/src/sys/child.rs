//! Fork and exec of one port program: in the launcher ([`fork_exec`]), or straight from a
//! host thread into the launcher's PID namespace ([`fork_exec_here`], what `posix_spawn`
//! does, plus a pidfd). The child calls only async-signal-safe functions between the clone
//! and `execve`, with every string prepared beforehand.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Which child fds the port's socket becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// fds 0 and 1 (OTP's `use_stdio`, the default).
    Stdio,
    /// fds 3 and 4 (OTP's `nouse_stdio`); 0, 1 and 2 are inherited.
    Fd34,
}

/// Everything the child needs, prepared before `fork`: what it execs, and its socket.
#[derive(Debug)]
pub(crate) struct ChildSpec {
    pub exec: Exec,
    pub io: OwnedFd,
}

/// What the child runs and how it sets itself up for it: the one typed description of a
/// port's program, from the port's options to `execve` (the launcher's protocol serialises
/// it as it is).
#[derive(Debug)]
pub(crate) struct Exec {
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: Option<CString>,
    pub cd: Option<CString>,
    pub layout: Layout,
    /// The port reads the child's output (OTP's `in`).
    pub reads: bool,
    /// The port writes the child's input (OTP's `out`).
    pub writes: bool,
    pub stderr_to_stdout: bool,
    /// Signal the kernel sends the child when the launcher dies.
    pub death_signal: Option<i32>,
    /// The file to exec, opened by the host (`O_PATH`), when `program` means something else in
    /// the child's view than in the host's (see `docs/no-orphans.md`); `program` is then
    /// exec'd only if the kernel cannot exec the file from its fd (a script).
    pub exec_fd: Option<OwnedFd>,
}

fn ptrs(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

/// What the child reads, as raw pointers into strings its forker keeps alive (on its frame for a
/// `vfork`-style spawn, in a [`Launch`] for one that does not wait).
struct ChildArgs {
    program: *const libc::c_char,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: *const libc::c_char,
    cd: *const libc::c_char,
    cd_msg: Vec<u8>,
    io: libc::c_int,
    layout: Layout,
    reads: bool,
    writes: bool,
    stderr_to_stdout: bool,
    death_signal: Option<i32>,
    /// [`Exec::exec_fd`], or -1.
    exec_fd: libc::c_int,
    /// A mount namespace to join before anything else (the launcher's, for a child a host
    /// thread forks), or -1.
    mnt_ns: libc::c_int,
    /// Where the child stores its pid (in its own PID namespace) first thing.
    announce: *const AtomicI32,
    /// The child resets every handled signal to its default itself before it unblocks
    /// signals: a host's handlers must not run on the child's stack (the launcher has none,
    /// and `clone3` with `CLONE_CLEAR_SIGHAND` has the kernel do it).
    reset_signals: bool,
    sigrtmax: libc::c_int,
}

impl ChildArgs {
    /// Points into `spec`'s strings, which must outlive the child's use of the result (until
    /// it execs); `io` is the child's socket, `mnt_ns` a mount namespace to join (or -1).
    fn new(spec: &Exec, io: libc::c_int, mnt_ns: libc::c_int, announce: *const AtomicI32, reset_signals: bool) -> Self {
        let mut cd_msg = b"spawn: Could not cd to ".to_vec();
        if let Some(cd) = &spec.cd {
            cd_msg.extend_from_slice(cd.as_bytes());
        }
        cd_msg.extend_from_slice(b"\r\n");
        let opt = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        ChildArgs {
            program: spec.program.as_ptr(),
            argv: ptrs(&spec.argv),
            envp: ptrs(&spec.envp),
            cwd: opt(&spec.cwd),
            cd: opt(&spec.cd),
            cd_msg,
            io,
            layout: spec.layout,
            reads: spec.reads,
            writes: spec.writes,
            stderr_to_stdout: spec.stderr_to_stdout,
            death_signal: spec.death_signal,
            exec_fd: spec.exec_fd.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
            mnt_ns,
            announce,
            reset_signals,
            sigrtmax: libc::SIGRTMAX(),
        }
    }
}

/// The stack a child runs on until it execs, reused from spawn to spawn: an anonymous
/// mapping with a guard page below it, so that only the pages a child touches cost memory
/// and an overflow faults instead of writing over the host's heap. No Rust reference ever
/// covers its bytes, which a child may be writing while the host runs.
pub(crate) struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

/// Bytes of a [`ChildStack`], its guard page included. `child_main` needs well under one
/// page: it makes raw system calls only.
const STACK_SIZE: usize = 64 * 1024;

// SAFETY: the mapping is owned by the `ChildStack` alone and moves with it; threads hand
// stacks to each other only through owners that follow each child's lifetime.
unsafe impl Send for ChildStack {}

impl ChildStack {
    /// Maps a new stack.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping, which nothing else refers to; the
        // `mprotect` changes only its first page.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            let stack = ChildStack { base, len: STACK_SIZE };
            if libc::mprotect(base, page_size(), libc::PROT_NONE) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(stack)
        }
    }

    /// The lowest usable address, above the guard page.
    #[cfg(target_arch = "x86_64")]
    fn bottom(&self) -> usize {
        self.base as usize + page_size()
    }

    /// The 16-byte-aligned top (stacks grow down on every Linux target beamport supports).
    fn top(&self) -> usize {
        (self.base as usize + self.len) & !15
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, which no child uses any more (its owner waited).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// Forks and execs `spec` the way `posix_spawn` does (`clone(CLONE_VM | CLONE_VFORK)`: no
/// page-table copy, the launcher waits until the child has exec'd); returns the child's pid.
/// Exec failures show up later as the child's exit status (`errno`), as in OTP. For the
/// launcher only: single-threaded as far as signals go, and without signal handlers.
///
/// Before it execs, the child stores its pid in `announce`: from then on it may exit and be
/// seen by a reaper on another thread, which must know it is a child being registered.
pub(crate) fn fork_exec(spec: &ChildSpec, stack: &mut ChildStack, announce: &AtomicI32) -> io::Result<i32> {
    let shared = ChildArgs::new(&spec.exec, spec.io.as_raw_fd(), -1, announce, false);
    clone_child(&shared, stack, libc::SIGCHLD, std::ptr::null_mut())
}

/// A child started by [`fork_exec_here`].
#[derive(Debug)]
pub(crate) struct HostChild {
    /// Its pid as the caller sees it.
    pub pid: i32,
    /// Where it stores its pid in its own PID namespace, the launcher's, where the launcher
    /// signals it: first thing, but maybe after the clone has returned (see [`ns_pid`]).
    pub announce: Arc<AtomicI32>,
    /// A pidfd: readable once the child has exited; [`crate::sys::signal::reap_pidfd`] reaps it.
    pub pidfd: OwnedFd,
}

/// A host-forked child's pid in the launcher's PID namespace: what it stored in `announce`, or, if
/// it has not yet, what the kernel says of its pidfd (`NSpid`). `None` if neither knows: the
/// child died before it ran, or is reaped (no `pidfd`).
pub(crate) fn ns_pid(announce: &AtomicI32, pidfd: Option<BorrowedFd<'_>>) -> Option<i32> {
    match announce.load(Ordering::SeqCst) {
        0 => {
            let pidfd = pidfd?;
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
            let line = info.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
            line.split_whitespace().last()?.parse().ok().filter(|&p| p > 0)
        }
        pid => Some(pid),
    }
}

/// The memory a child of [`fork_exec_here`] uses until it execs: its stack, what it reads,
/// and the strings that points to. Kept in [`LAUNCHES`] until the kernel clears `running`
/// (`CLONE_CHILD_CLEARTID`: it does when the child execs or exits), then reused.
struct Launch {
    stack: ChildStack,
    shared: Option<ChildArgs>,
    exec: Option<Exec>,
    announce: Option<Arc<AtomicI32>>,
    /// Non-zero from before the clone until the child has exec'd or exited.
    running: AtomicU32,
}

impl Launch {
    /// Drops what its last child read, once that child has exec'd or exited.
    fn forget_child(&mut self) {
        self.shared = None;
        self.exec = None;
        self.announce = None;
    }
}

// SAFETY: the raw pointers in `shared` point into `exec` and into an `Arc` it is kept with,
// both owned by the `Launch` and moved with it; no thread but the one that took a `Launch`
// from `LAUNCHES` touches it, and the child only reads it.
unsafe impl Send for Launch {}

/// Launches of children that may still be running on them, and free ones to reuse; made on
/// demand, never freed, at most [`LAUNCHES_MAX`]. Boxed: a child reads its `shared` and the
/// kernel writes its `running` where they are.
static LAUNCHES: Mutex<Launches> = Mutex::new(Launches { idle: Vec::new(), made: 0 });

struct Launches {
    /// Those not taken by a forking thread: free, or used by a child that has not exec'd.
    #[allow(clippy::vec_box)]
    idle: Vec<Box<Launch>>,
    /// How many exist.
    made: usize,
}

/// How many children may be between their clone and their `execve` at once (each launch
/// takes a few pages once used: its stack, its strings). Past that, [`fork_exec_here`]
/// fails with `EAGAIN` rather than wait, and its caller asks the launcher. On a busy machine a
/// child may wait long for a CPU before it execs: with 64 spawns in flight on two CPUs, 63
/// launches were in use at once, and a cap of 8 or 16 sent so many spawns to the launcher
/// that the rate fell back to the launcher's (32: −2 %, in six paired rounds each). The
/// engine runs at most 64 such children anyway.
const LAUNCHES_MAX: usize = 64;

/// A launch no child is using any more, or `EAGAIN` if all [`LAUNCHES_MAX`] are in use.
fn take_launch() -> io::Result<Box<Launch>> {
    let mut pool = LAUNCHES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = pool.idle.iter().position(|l| l.running.load(Ordering::Acquire) == 0) {
        let mut l = pool.idle.swap_remove(i);
        drop(pool);
        l.forget_child();
        return Ok(l);
    }
    if pool.made >= LAUNCHES_MAX {
        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
    }
    pool.made += 1;
    drop(pool);
    let stack = ChildStack::new().inspect_err(|_| LAUNCHES.lock().unwrap_or_else(|p| p.into_inner()).made -= 1)?;
    Ok(Box::new(Launch { stack, shared: None, exec: None, announce: None, running: AtomicU32::new(0) }))
}

/// Gives a launch back to [`LAUNCHES`], its child (if any) still on it.
fn put_launch(l: Box<Launch>) {
    LAUNCHES.lock().unwrap_or_else(|p| p.into_inner()).idle.push(l);
}

/// Forks and execs `spec` from any thread of a multi-threaded host, as `posix_spawn` does,
/// into the launcher's PID namespace `ns`, but without waiting for the child to exec: the
/// clone returns as soon as the child exists, and the caller goes on while the child sets
/// itself up on the other CPU. The child runs on a [`Launch`] of its own until it execs (on
/// x86-64 with Linux ≥ 5.5: `clone3` with `CLONE_CLEAR_SIGHAND`; elsewhere the caller waits,
/// as `posix_spawn` would).
///
/// Where the namespace is owned by a user namespace of the launcher's (a host that is not
/// root), the calling thread cannot enter it: a multi-threaded process may not change its user
/// namespace. A *hop* can: a task that shares the host's memory and fd table but is a process
/// of its own, with its own `fs_struct` (`clone(CLONE_VM | CLONE_VFORK | CLONE_FILES)`). It
/// enters the launcher's user namespace (the host's user owns it, so it may), then its PID
/// namespace, clones the child with `CLONE_PARENT`, so that the child is the host's as in the
/// other tier, and exits; the caller, suspended meanwhile, reaps it. The hop costs a spawn
/// some 20 µs (BENCHMARKS.md has the figures).
///
/// The child is the host's, as a `posix_spawn` child is: its pidfd tells of its exit, and so
/// does a `SIGCHLD` (the clone asks for no exit signal, but `execve` sets it back to
/// `SIGCHLD`), so a `waitpid(-1)` elsewhere in the host can reap it first. It starts with
/// every signal blocked and its handlers reset to their defaults (by the kernel, or by
/// itself before it unblocks them), since it shares the host's memory until it execs.
///
/// Where `ns` has a mount namespace, the child joins it (the launcher's, with its `/proc`)
/// before it does anything else, and keeps the host's working directory.
///
/// On failure the spec comes back, for the caller to hand to the launcher.
pub(crate) fn fork_exec_here(spec: ChildSpec, ns: &PidNamespace) -> Result<HostChild, (io::Error, Box<ChildSpec>)> {
    let announce = Arc::new(AtomicI32::new(0));
    let mut launch = match take_launch() {
        Ok(l) => l,
        Err(e) => return Err((e, Box::new(spec))),
    };
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
    // The child reads the strings where they are on the heap: moving them into the launch
    // moves their owners, not their bytes.
    let ChildSpec { exec, io } = spec;
    let mnt_ns = ns.mount.as_ref().map_or(-1, |fd| fd.as_raw_fd());
    let shared = ChildArgs::new(&exec, io.as_raw_fd(), mnt_ns, Arc::as_ptr(&announce), false);
    launch.exec = Some(exec);
    launch.announce = Some(announce.clone());
    let shared = launch.shared.insert(shared) as *mut ChildArgs;
    launch.running.store(1, Ordering::Release);
    let pid = match &ns.user {
        // SAFETY: as for `clone3_detached` below; the hop reads `hop` on this frame, which it
        // outlives (CLONE_VFORK: this thread waits until it has exited).
        Some(user) => unsafe {
            let mut hop = Hop {
                user_ns: user.as_raw_fd(),
                pid_ns: ns.target.as_raw_fd(),
                shared,
                stack: &mut launch.stack,
                running: &launch.running,
                pid: 0,
                pidfd: -1,
            };
            let r = hop_here(&mut hop);
            pidfd = hop.pidfd;
            r.and_then(|()| match hop.pid {
                pid if pid > 0 => Ok(pid as i32),
                0 => Err(io::Error::from_raw_os_error(libc::EIO)),
                e => Err(io::Error::from_raw_os_error(-e as i32)),
            })
        },
        None => match ns.enter() {
            // Back in the host's namespace as soon as the clone returns.
            // SAFETY: `shared` and all it points to are owned by `launch`, a heap box that
            // goes into `LAUNCHES` and is not touched again until the kernel has cleared
            // `running`, i.e. until the child has exec'd or exited (but for `exec.exec_fd`,
            // taken below, which `shared` does not point to: the child has the fd's number).
            Ok(_in_ns) => {
                match unsafe { clone3_detached(&*shared, &mut launch.stack, &mut pidfd, &launch.running, false) } {
                    Some(r) => r,
                    None => {
                        // Another architecture or an older kernel: wait for the exec, as `posix_spawn`.
                        launch.running.store(0, Ordering::Release);
                        // SAFETY: no child has it yet; this one resets its handlers itself, and
                        // `shared` is alive until `clone_child` returns, after the exec (CLONE_VFORK).
                        unsafe {
                            (*shared).reset_signals = true;
                            clone_child(&*shared, &mut launch.stack, libc::CLONE_PIDFD, &mut pidfd)
                        }
                    }
                }
            }
            Err(e) => Err(e),
        },
    };
    // SAFETY: `old` is the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    let pid = match pid {
        Ok(pid) => pid,
        Err(e) => {
            launch.running.store(0, Ordering::Release);
            launch.shared = None;
            launch.announce = None;
            let spec = Box::new(ChildSpec { exec: launch.exec.take().expect("stored above"), io });
            put_launch(launch);
            return Err((e, spec));
        }
    };
    // The child has its own copy of the fd table: the host's copies of its socket and of the
    // file it execs go now (the child uses only their numbers).
    drop(io);
    drop(launch.exec.as_mut().and_then(|e| e.exec_fd.take()));
    put_launch(launch);
    // SAFETY: with CLONE_PIDFD a successful clone stored a new pidfd, owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(HostChild { pid, announce, pidfd })
}

/// What a hop (see [`fork_exec_here`]) reads, and what it reports, on its forker's frame.
struct Hop {
    /// The launcher's user and PID namespaces.
    user_ns: libc::c_int,
    pid_ns: libc::c_int,
    /// The child to clone, or null: only enter the namespaces (a check).
    shared: *const ChildArgs,
    stack: *mut ChildStack,
    running: *const AtomicU32,
    /// Out: the child's pid (0 for a check that passed), or `-errno`; its pidfd.
    pid: isize,
    pidfd: libc::c_int,
}

thread_local! {
    /// The stack this thread's hops run on (one at a time: the thread waits for each).
    static HOP_STACK: std::cell::RefCell<Option<ChildStack>> = const { std::cell::RefCell::new(None) };
}

/// Runs `hop` on this thread's hop stack, and reaps it.
///
/// # Safety
///
/// The calling thread has every signal blocked (the hop inherits its mask, and shares its
/// memory but not its handlers' state).
///
/// `hop.shared`, if not null, and what it points to must stay untouched until the kernel
/// clears `hop.running` (as for [`clone3_detached`]); `hop.stack` and `hop.running` must be
/// valid for the call.
unsafe fn hop_here(hop: &mut Hop) -> io::Result<()> {
    HOP_STACK.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(ChildStack::new()?);
        }
        let stack = cell.as_mut().expect("made above");
        // SAFETY: the hop runs `hop_main` on `stack`, which is this thread's and borrowed for
        // the call, and shares our memory and fd table, but is a process of its own (no
        // CLONE_THREAD, CLONE_FS or CLONE_SIGHAND), so that it may enter a user namespace.
        // With CLONE_VFORK this thread is suspended until the hop has exited, so `hop` and the
        // stack outlive it. Signals are blocked (the caller's mask, which the hop inherits),
        // so no handler of the host's runs on its stack. Its exit signal is 0: only a wait
        // with `__WALL` or `__WCLONE` sees it, and the one below reaps it.
        let pid = unsafe {
            libc::clone(
                hop_main,
                stack.top() as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES,
                hop as *mut Hop as *mut libc::c_void,
            )
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; the hop has exited (CLONE_VFORK).
        unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        Ok(())
    })
}

/// A hop's body (see [`fork_exec_here`]): into the launcher's user namespace, then its PID
/// namespace (for the hop's children), and the child's clone as the host's child.
extern "C" fn hop_main(arg: *mut libc::c_void) -> libc::c_int {
    use raw::call;
    // SAFETY: `arg` is the `Hop` on the suspended forker's frame, alive until this hop has
    // exited; only raw system calls and `clone3_detached` (which makes one) run here, as in a
    // child: no `errno`, no locks, no allocation.
    unsafe {
        let hop = &mut *(arg as *mut Hop);
        for (fd, kind) in [(hop.user_ns, libc::CLONE_NEWUSER), (hop.pid_ns, libc::CLONE_NEWPID)] {
            let r = call(libc::SYS_setns, fd as usize, kind as usize, 0, 0);
            if r < 0 {
                hop.pid = r;
                return 0;
            }
        }
        if hop.shared.is_null() {
            hop.pid = 0;
            return 0;
        }
        hop.pid = match clone3_detached(&*hop.shared, &mut *hop.stack, &mut hop.pidfd, &*hop.running, true) {
            Some(Ok(pid)) => pid as isize,
            Some(Err(e)) => -(e.raw_os_error().unwrap_or(libc::EIO) as isize),
            None => -(libc::ENOSYS as isize),
        };
        0
    }
}

/// `clone(CLONE_VM | CLONE_VFORK | extra_flags)` running `child_main(shared)`.
fn clone_child(
    shared: &ChildArgs,
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
            shared as *const ChildArgs as *mut libc::c_void,
            pidfd,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// `struct clone_args` of `clone3(2)`, as far as beamport uses it (`CLONE_ARGS_SIZE_VER0`).
#[cfg(target_arch = "x86_64")]
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
#[cfg(target_arch = "x86_64")]
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// `clone3(CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND | CLONE_CHILD_CLEARTID)` running
/// `child_main(shared)` on `stack`, without waiting for it: the kernel resets every handled
/// signal in the child (which saves it one `sigaction` per signal, some 13 µs), and clears
/// `running` and wakes its futex once the child has exec'd or exited (at that point the child
/// has left the host's memory). With `parent`, the child is its caller's parent's
/// (`CLONE_PARENT`: a hop's, see [`fork_exec_here`]). `None` where this is not available
/// (another architecture, or a kernel before 5.5): the caller then forks as `posix_spawn` does.
///
/// # Safety
///
/// `shared`, all it points to and `stack` must stay untouched until `running` is 0 again.
unsafe fn clone3_detached(
    shared: &ChildArgs,
    stack: &mut ChildStack,
    pidfd: &mut libc::c_int,
    running: &AtomicU32,
    parent: bool,
) -> Option<io::Result<i32>> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::atomic::AtomicBool;
        static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
        if UNSUPPORTED.load(Ordering::Relaxed) {
            return None;
        }
        let base = stack.bottom();
        let parent = if parent { libc::CLONE_PARENT as u64 } else { 0 };
        let mut args = CloneArgs {
            flags: (libc::CLONE_VM | libc::CLONE_PIDFD | libc::CLONE_CHILD_CLEARTID) as u64
                | CLONE_CLEAR_SIGHAND
                | parent,
            pidfd: pidfd as *mut libc::c_int as u64,
            child_tid: running.as_ptr() as u64,
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
        // meets the ABI's alignment; `child_main(shared)` runs there and never returns
        // (`execve` or `exit_group`); should it, the child exits. It shares our memory but
        // touches only `stack` and what `shared` points to, which the caller leaves alone
        // until the kernel clears `running` (see the function's contract), and makes only raw
        // system calls (no `errno`: its TLS pointer is still this thread's). Without
        // CLONE_FILES, CLONE_FS and CLONE_SIGHAND its fd table, cwd and signal dispositions
        // are its own; its handlers are reset and its signals blocked (the caller's mask),
        // so no host code runs in it. `args` is read by the kernel during the call only.
        // `r12` and `r13` survive the syscall in both processes (it changes only rax, rcx and
        // r11).
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
                in("r12") shared as *const ChildArgs as *mut libc::c_void,
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
        let _ = (shared, stack, pidfd, running, parent);
        None
    }
}

/// The PID namespace of the launcher, which a host thread enters for the time of one
/// [`fork_exec_here`] (`setns` changes where the calling thread's *children* go, not the
/// thread itself), so that the child is the launcher's to kill, even when the host is gone;
/// and the launcher's mount namespace, with its `/proc`, which the child joins itself. Where
/// the PID namespace is owned by the launcher's user namespace (a host that is not root),
/// that user namespace too: a hop enters both for each child (see [`fork_exec_here`]).
#[derive(Debug)]
pub(crate) struct PidNamespace {
    target: OwnedFd,
    home: OwnedFd,
    mount: Option<OwnedFd>,
    user: Option<OwnedFd>,
}

/// While alive, the calling thread's children are born in the launcher's PID namespace; the
/// thread cannot start threads meanwhile (the kernel refuses `CLONE_THREAD` then).
pub(crate) struct InNamespace<'a>(&'a PidNamespace);

impl PidNamespace {
    /// Opens the PID namespace of process `pid` (as this process sees it), and this process's
    /// own to come back to; with `user`, `pid`'s user namespace too, which owns that PID
    /// namespace. Checks that this thread's children may be born there: that the thread may
    /// enter it (`CAP_SYS_ADMIN` over it), or with `user` that a hop may enter both (the
    /// user namespace is this process's user's). With `mount`, also `pid`'s mount namespace,
    /// for the children to join (if it is not this process's own).
    pub(crate) fn of(pid: i32, mount: bool, user: bool) -> io::Result<PidNamespace> {
        use rustix::fs::{Mode, OFlags};
        let open = |path: String| -> io::Result<OwnedFd> {
            Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?)
        };
        let mount = if mount {
            let theirs = open(format!("/proc/{pid}/ns/mnt"))?;
            let ours = rustix::fs::stat("/proc/self/ns/mnt")?;
            let same = rustix::fs::fstat(&theirs).is_ok_and(|t| (t.st_dev, t.st_ino) == (ours.st_dev, ours.st_ino));
            (!same).then_some(theirs)
        } else {
            None
        };
        let ns = PidNamespace {
            target: open(format!("/proc/{pid}/ns/pid"))?,
            home: open("/proc/self/ns/pid".into())?,
            mount,
            user: if user { Some(open(format!("/proc/{pid}/ns/user"))?) } else { None },
        };
        match &ns.user {
            Some(user) => {
                if !cfg!(target_arch = "x86_64") {
                    return Err(io::Error::other("a hop into a user namespace needs clone3 on x86-64"));
                }
                let mut hop = Hop {
                    user_ns: user.as_raw_fd(),
                    pid_ns: ns.target.as_raw_fd(),
                    shared: std::ptr::null(),
                    stack: std::ptr::null_mut(),
                    running: std::ptr::null(),
                    pid: 0,
                    pidfd: -1,
                };
                // SAFETY: a check: with `shared` null the hop clones nothing. Signals are
                // blocked around it, as around a spawn (see `hop_here`), and restored.
                let done = unsafe {
                    let mut all: libc::sigset_t = std::mem::zeroed();
                    let mut old: libc::sigset_t = std::mem::zeroed();
                    libc::sigfillset(&mut all);
                    libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
                    let done = hop_here(&mut hop);
                    libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                    done
                };
                done?;
                if hop.pid < 0 {
                    return Err(io::Error::from_raw_os_error(-hop.pid as i32));
                }
            }
            None => drop(ns.enter()?),
        }
        Ok(ns)
    }

    /// Sends this thread's future children to the namespace until the guard drops (not for
    /// one owned by a user namespace of its own: see [`fork_exec_here`]).
    fn enter(&self) -> io::Result<InNamespace<'_>> {
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

/// Raw system calls for the child between its clone and its `execve`: they return the result
/// or `-errno` and never touch `errno`, which lives in the forking thread's TLS, shared with a
/// child that runs alongside it (see [`fork_exec_here`]).
mod raw {
    /// `syscall(nr, a, b, c, d)`.
    ///
    /// # Safety
    ///
    /// As the system call `nr` with these arguments.
    pub(super) unsafe fn call(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
        // SAFETY: the caller vouches for the call; the fifth argument is ignored by calls of four.
        unsafe { call5(nr, a, b, c, d, 0) }
    }

    /// `syscall(nr, a, b, c, d, e)`.
    ///
    /// # Safety
    ///
    /// As the system call `nr` with these arguments.
    #[cfg(target_arch = "x86_64")]
    pub(super) unsafe fn call5(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
        let ret: isize;
        // SAFETY: the x86-64 system call convention: number and result in rax, arguments in
        // rdi, rsi, rdx, r10, r8; the kernel clobbers rcx and r11. The caller vouches for the
        // call.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                in("r10") d,
                in("r8") e,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// `syscall(nr, a, b, c, d, e)` through libc, whose `errno` only a `vfork`-style child, whose
    /// parent is suspended, may use: on these targets no child runs alongside its parent.
    ///
    /// # Safety
    ///
    /// As the system call `nr` with these arguments.
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn call5(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
        // SAFETY: the caller vouches for the call.
        let r = unsafe { libc::syscall(nr, a, b, c, d, e) };
        if r < 0 {
            // SAFETY: `errno` of this thread, just set by the failed call.
            -(unsafe { *libc::__errno_location() } as isize)
        } else {
            r as isize
        }
    }
}

/// The kernel's `struct sigaction` set to `SIG_DFL` with no flags and an empty mask: all
/// zeros, whatever the architecture's field order.
const DEFAULT_ACTION: [u64; 4] = [0; 4];

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    use raw::call;
    // SAFETY: `arg` is the `ChildArgs` that the clone passed, alive until this child has exec'd
    // or exited (its forker waits for that, or keeps it in a `Launch` until the kernel says
    // so), as is every string it points to. Only raw system calls run here: no `errno`, no
    // locks, no allocation.
    unsafe {
        let sh = &*(arg as *const ChildArgs);
        let exit = |e: isize| -> ! {
            call(libc::SYS_exit_group, e.unsigned_abs(), 0, 0, 0);
            unreachable_exit()
        };
        // Before anything can make it exit: an atomic store in memory the forker shares.
        (*sh.announce).store(call(libc::SYS_getpid, 0, 0, 0, 0) as i32, Ordering::SeqCst);
        if sh.mnt_ns >= 0 {
            // Into the launcher's mount namespace, where `/proc` is its PID namespace's. A
            // multi-threaded host cannot `setns` there, but this child, which shares no
            // `fs_struct` (no CLONE_FS), can. `setns` moves the working directory to the new
            // namespace's root: the host's is kept through an fd. Where that fails, the child
            // stays in the host's mount namespace (and sees the host's `/proc`).
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
            let cwd = call(libc::SYS_openat, libc::AT_FDCWD as usize, c".".as_ptr() as usize, flags as usize, 0);
            if cwd >= 0 {
                if call(libc::SYS_setns, sh.mnt_ns as usize, libc::CLONE_NEWNS as usize, 0, 0) == 0 {
                    let r = call(libc::SYS_fchdir, cwd as usize, 0, 0, 0);
                    if r < 0 {
                        exit(r);
                    }
                }
                call(libc::SYS_close, cwd as usize, 0, 0, 0);
            }
        }
        let sigset = std::mem::size_of::<u64>();
        if sh.reset_signals {
            // As `posix_spawn` does: a handler of the host must not run here, and `execve`
            // would reset them anyway. Ignored signals stay ignored, as across `execve`. The
            // handler is the first field of the kernel's `struct sigaction` everywhere.
            for sig in 1..=sh.sigrtmax as usize {
                let mut old = [0u64; 4];
                if sig == libc::SIGKILL as usize
                    || sig == libc::SIGSTOP as usize
                    || call(libc::SYS_rt_sigaction, sig, 0, old.as_mut_ptr() as usize, sigset) != 0
                {
                    continue;
                }
                if old[0] != libc::SIG_DFL as u64 && old[0] != libc::SIG_IGN as u64 {
                    call(libc::SYS_rt_sigaction, sig, DEFAULT_ACTION.as_ptr() as usize, 0, sigset);
                }
            }
        }
        let empty = 0u64;
        call(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK as usize, &empty as *const u64 as usize, 0, sigset);
        // Rust hosts ignore SIGPIPE; port programs get the default back, so a program that
        // writes to a closed port ends instead of spinning on EPIPE, as OTP's programs, which
        // inherit the VM's ignored SIGPIPE, can (docs/otp-semantics.md#children-outlive-the-vm).
        call(libc::SYS_rt_sigaction, libc::SIGPIPE as usize, DEFAULT_ACTION.as_ptr() as usize, 0, sigset);
        call(libc::SYS_setsid, 0, 0, 0, 0);
        if let Some(sig) = sh.death_signal {
            call(libc::SYS_prctl, libc::PR_SET_PDEATHSIG as usize, sig as usize, 0, 0);
        }
        if !sh.cwd.is_null() {
            call(libc::SYS_chdir, sh.cwd as usize, 0, 0, 0);
        }
        if !sh.cd.is_null() {
            let r = call(libc::SYS_chdir, sh.cd as usize, 0, 0, 0);
            if r < 0 {
                call(libc::SYS_write, 2, sh.cd_msg.as_ptr() as usize, sh.cd_msg.len(), 0);
                exit(r);
            }
        }
        let io = call(libc::SYS_fcntl, sh.io as usize, libc::F_DUPFD as usize, 10, 0);
        if io < 0 {
            exit(io);
        }
        let io = io as usize;
        let exe = if sh.exec_fd >= 0 {
            let exe = call(libc::SYS_fcntl, sh.exec_fd as usize, libc::F_DUPFD_CLOEXEC as usize, 10, 0);
            if exe < 0 {
                exit(exe);
            }
            exe
        } else {
            -1
        };
        let (rfd, wfd, first_free) = match sh.layout {
            Layout::Stdio => (0, 1, 3),
            Layout::Fd34 => (3, 4, 5),
        };
        if sh.writes {
            call(libc::SYS_dup3, io, rfd, 0, 0);
        }
        if sh.reads {
            call(libc::SYS_dup3, io, wfd, 0, 0);
        }
        if sh.stderr_to_stdout {
            call(libc::SYS_dup3, io, 2, 0, 0);
        }
        if exe >= 0 {
            // The file to exec becomes the first fd past the port's (closed at `execve`).
            call(libc::SYS_dup3, exe as usize, first_free, libc::O_CLOEXEC as usize, 0);
            call(libc::SYS_close_range, first_free + 1, libc::c_uint::MAX as usize, 0, 0);
            let r = raw::call5(
                libc::SYS_execveat,
                first_free,
                c"".as_ptr() as usize,
                sh.argv.as_ptr() as usize,
                sh.envp.as_ptr() as usize,
                libc::AT_EMPTY_PATH as usize,
            );
            // ENOENT from an open file: a script, whose interpreter would be handed
            // `/dev/fd/N`, closed at exec. Its path, then, as OTP would.
            if r != -(libc::ENOENT as isize) {
                exit(r);
            }
        } else {
            call(libc::SYS_close_range, first_free, libc::c_uint::MAX as usize, 0, 0);
        }
        let r = call(libc::SYS_execve, sh.program as usize, sh.argv.as_ptr() as usize, sh.envp.as_ptr() as usize, 0);
        exit(r)
    }
}

/// After `exit_group`, which does not return.
fn unreachable_exit() -> ! {
    loop {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_not_announced_yet_comes_from_the_pidfd() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).expect("pidfd_open");
        // In this process's own namespace `NSpid` has one entry: the pid itself.
        assert_eq!(ns_pid(&AtomicI32::new(0), Some(pidfd.as_fd())), Some(child.id() as i32));
        assert_eq!(ns_pid(&AtomicI32::new(7), Some(pidfd.as_fd())), Some(7), "what the child announced wins");
        assert_eq!(ns_pid(&AtomicI32::new(0), None), None);
        child.kill().expect("kill");
        child.wait().expect("wait");
    }

    #[test]
    fn a_launch_is_reused_once_its_child_has_exec_d() {
        let before = LAUNCHES.lock().unwrap().made;
        for _ in 0..20 {
            let l = take_launch().expect("a launch");
            // What the kernel does at the child's exec: `running` back to 0.
            l.running.store(0, Ordering::Release);
            put_launch(l);
        }
        // (Other tests may make a few meanwhile.)
        assert!(LAUNCHES.lock().unwrap().made < before + 10, "launches were made, not reused");
        let busy = take_launch().expect("a launch");
        busy.running.store(1, Ordering::Release);
        let marked = &*busy as *const Launch;
        put_launch(busy);
        let other = take_launch().expect("another launch");
        assert_ne!(&*other as *const Launch, marked, "a launch still in use was handed out");
        put_launch(other);
        let pool = LAUNCHES.lock().unwrap();
        let marked = pool.idle.iter().find(|l| std::ptr::eq(&***l, marked)).expect("still in the pool");
        marked.running.store(0, Ordering::Release);
    }
}
