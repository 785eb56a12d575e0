//! Starting the launcher: `clone` the host into a new PID namespace (a new user namespace as
//! well where the kernel wants one) and a mount namespace with a `/proc` of that PID
//! namespace, and re-exec the host's own binary there, where [`super::entry`] turns it into
//! the launcher before `main` runs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// How the launcher was isolated; the strongest that worked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// PID 1 of a new PID namespace.
    PidNamespace,
    /// PID 1 of a new PID namespace inside a new user namespace.
    UserPidNamespace,
    /// An ordinary child process inside a cgroup v2 group with `cgroup.kill`.
    Cgroup,
    /// An ordinary child process.
    Plain,
}

/// The environment variable that marks a re-executed binary as the launcher; its value is
/// the control socket's fd number.
pub(crate) const LAUNCHER_ENV: &str = "BEAMPORT_LAUNCHER_FD";

/// Set for a launcher that kept `CAP_SYS_ADMIN` as an ambient capability (see [`launcher_caps`]).
const CAPS_ENV: &str = "BEAMPORT_LAUNCHER_AMBIENT";

/// A started launcher.
#[derive(Debug)]
pub(crate) struct Started {
    pub pid: i32,
    pub isolation: Isolation,
    /// Why stronger isolations were refused.
    pub refused: Vec<(Isolation, io::Error)>,
    /// In a PID namespace tier: why the launcher has no `/proc` of its own namespace (its
    /// programs then see the host's, where their own pids name other processes); `None` when
    /// it has one, or in a tier without a PID namespace (the host's `/proc` is right there).
    pub proc_refused: Option<io::Error>,
}

struct Prepared {
    exe: OwnedFd,
    argv: Vec<CString>,
    envp: Vec<CString>,
    sock: i32,
    uid_map: CString,
    gid_map: CString,
    /// The host runs as a user other than root: in a user namespace that maps only that user,
    /// the launcher would lose every capability at its `execve`.
    keep_admin: bool,
}

fn prepare(sock: &OwnedFd, extra_env: &[(&str, &std::ffi::OsStr)]) -> io::Result<Prepared> {
    let exe: OwnedFd = rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != LAUNCHER_ENV)
        .filter_map(|(k, v)| {
            use std::os::unix::ffi::OsStrExt;
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    envp.push(CString::new(format!("{LAUNCHER_ENV}={}", sock.as_raw_fd())).expect("no NUL"));
    for (k, v) in extra_env {
        use std::os::unix::ffi::OsStrExt;
        let mut kv = format!("{k}=").into_bytes();
        kv.extend_from_slice(v.as_bytes());
        envp.push(CString::new(kv).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?);
    }
    // The user namespace maps the host's own user and group, and only them: port programs run
    // as the user who started the host, as OTP's do.
    let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    Ok(Prepared {
        exe,
        argv: vec![CString::new("beamport-launcher").expect("no NUL")],
        envp,
        sock: sock.as_raw_fd(),
        uid_map: CString::new(format!("{uid} {uid} 1")).expect("no NUL"),
        gid_map: CString::new(format!("{gid} {gid} 1")).expect("no NUL"),
        keep_admin: uid != 0,
    })
}

/// Starts the launcher with `sock` as its control socket (inherited across exec), trying each
/// isolation of `tiers` in turn (`Cgroup` and `Plain` are both ordinary children here; the
/// caller passes the cgroup through `extra_env`). Must be called from a thread that lives as
/// long as the host: the launcher's death signal fires when that thread ends.
///
/// A PID namespace tier comes with a mount namespace in which the launcher mounts a `/proc`
/// of its PID namespace, so that a program's pids and its `/proc` agree; where the kernel
/// refuses that, the tier goes on without it, and `proc_refused` says why.
pub(crate) fn start_launcher(
    sock: &OwnedFd,
    tiers: &[Isolation],
    extra_env: &[(&str, &std::ffi::OsStr)],
) -> Result<Started, Vec<(Isolation, io::Error)>> {
    let p = prepare(sock, extra_env).map_err(|e| vec![(Isolation::Plain, e)])?;
    let mut refused = Vec::new();
    for &isolation in tiers {
        let flags = match isolation {
            Isolation::PidNamespace => libc::CLONE_NEWPID,
            Isolation::UserPidNamespace => libc::CLONE_NEWPID | libc::CLONE_NEWUSER,
            Isolation::Cgroup | Isolation::Plain => 0,
        };
        let user = isolation == Isolation::UserPidNamespace;
        if flags == 0 {
            match clone_exec(&p, 0, Setup::default()) {
                Ok((pid, _)) => return Ok(Started { pid, isolation, refused, proc_refused: None }),
                Err(e) => refused.push((isolation, e)),
            }
            continue;
        }
        let setup = Setup { map_ids: user, keep_admin: user && p.keep_admin, private_proc: true };
        let started = match clone_exec(&p, flags | libc::CLONE_NEWNS, setup) {
            Ok(started) => Ok(started),
            // The clone itself refused a mount namespace (a failed step of the child is an
            // error of another kind, without an OS code): the PID namespace alone still holds
            // every child.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::EINVAL) => {
                let setup = Setup { private_proc: false, ..setup };
                let why = io::Error::new(e.kind(), format!("no mount namespace: {e}"));
                clone_exec(&p, flags, setup).map(|(pid, _)| (pid, Some(why)))
            }
            Err(e) => Err(e),
        };
        match started {
            Ok((pid, proc_refused)) => return Ok(Started { pid, isolation, refused, proc_refused }),
            Err(e) => refused.push((isolation, e)),
        }
    }
    Err(refused)
}

/// What the clone child does before it execs the launcher.
#[derive(Clone, Copy, Debug, Default)]
struct Setup {
    /// Write the user namespace's maps.
    map_ids: bool,
    /// Keep `CAP_SYS_ADMIN` (in the new user namespace only) across the `execve`, as an
    /// ambient capability: the launcher needs it to tell the host its children's pids
    /// (`SCM_CREDENTIALS` naming another process). The launcher drops it from the sets its
    /// children inherit ([`launcher_caps`]).
    keep_admin: bool,
    /// Make the mount namespace a slave of the host's and mount a `/proc` of the new PID
    /// namespace on `/proc`.
    private_proc: bool,
}

/// The steps of the clone child that report to the parent (see [`clone_exec`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum Step {
    Maps = 1,
    Caps = 2,
    Proc = 3,
    Exec = 4,
}

impl Step {
    fn from_u32(v: u32) -> Option<Step> {
        [Step::Maps, Step::Caps, Step::Proc, Step::Exec].into_iter().find(|s| *s as u32 == v)
    }

    fn what(self) -> &'static str {
        match self {
            Step::Maps => "writing its user namespace's uid and gid maps",
            Step::Caps => "keeping CAP_SYS_ADMIN in its user namespace across exec",
            Step::Proc => "mounting a /proc of its own PID namespace",
            Step::Exec => "executing the launcher",
        }
    }
}

fn write_file(path: &[u8], data: &CString) -> Result<(), i32> {
    // SAFETY: `path` is NUL-terminated by the callers, `data` is a valid C string; `errno` is
    // this process's own (the clone child has a copy of the parent's memory).
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(*libc::__errno_location());
        }
        let b = data.as_bytes();
        let ok = libc::write(fd, b.as_ptr().cast(), b.len()) == b.len() as isize;
        let errno = *libc::__errno_location();
        libc::close(fd);
        if ok {
            Ok(())
        } else {
            Err(errno)
        }
    }
}

/// Clones a child with `ns_flags`, which sets itself up as `setup` says and execs the launcher.
/// Returns once the child has exec'd: its pid, and why it has no `/proc` of its own if
/// `setup` asked for one and it failed. A failed step before that is the error, the child
/// reaped. The child reports each failure on a pipe closed at its `execve` (`CLOEXEC`), as
/// `posix_spawn` implementations do.
fn clone_exec(p: &Prepared, ns_flags: libc::c_int, setup: Setup) -> io::Result<(i32, Option<io::Error>)> {
    let argv: Vec<*const libc::c_char> =
        p.argv.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let caps_env = CString::new(format!("{CAPS_ENV}=1")).expect("no NUL");
    let envp: Vec<*const libc::c_char> = p
        .envp
        .iter()
        .map(|s| s.as_ptr())
        .chain(setup.keep_admin.then(|| caps_env.as_ptr()))
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let deny = CString::new("deny").expect("no NUL");
    let (report_r, report_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let report_fd = report_w.as_raw_fd();
    let flags = (ns_flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: a raw `clone` without CLONE_VM and with a NULL stack behaves like `fork`: the
    // child gets a copy-on-write copy of the address space. The host may be multi-threaded,
    // so the child calls only async-signal-safe functions (raw system calls) on data prepared
    // above, then execs or `_exit`s.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: child side of the clone; see above.
        unsafe { launcher_child(p, setup, &deny, report_fd, &argv, &envp) }
    }
    let pid = pid as i32;
    drop(report_w);
    let mut failures = Vec::new();
    let mut buf = [0u8; 8];
    loop {
        match rustix::io::read(&report_r, &mut buf) {
            Ok(8) => {
                let step = u32::from_ne_bytes(buf[..4].try_into().expect("4 bytes"));
                let errno = i32::from_ne_bytes(buf[4..].try_into().expect("4 bytes"));
                if let Some(step) = Step::from_u32(step) {
                    failures.push((step, errno));
                }
            }
            Err(rustix::io::Errno::INTR) => continue,
            // EOF: the child exec'd, or exited after its reports (records are 8 bytes, far
            // below `PIPE_BUF`: each arrives whole).
            _ => break,
        }
    }
    let fail = |step: Step, errno: i32| {
        let e = io::Error::from_raw_os_error(errno);
        io::Error::new(e.kind(), format!("{}: {e}", step.what()))
    };
    if let Some(&(step, errno)) = failures.iter().find(|(s, _)| *s != Step::Proc) {
        // It `_exit`ed after that report.
        let _ = rustix::process::waitpid(rustix::process::Pid::from_raw(pid), rustix::process::WaitOptions::empty());
        return Err(fail(step, errno));
    }
    let proc_refused = failures.iter().find(|(s, _)| *s == Step::Proc).map(|&(s, errno)| fail(s, errno));
    Ok((pid, proc_refused))
}

/// The clone child of [`clone_exec`]: sets itself up as `setup` says, reporting each failure
/// on `report` (8 bytes: the [`Step`], then `errno`), and execs the launcher.
///
/// # Safety
///
/// Only in the child of a fork-like `clone` (its own copy of memory), with every pointer
/// valid; it makes async-signal-safe calls only.
unsafe fn launcher_child(
    p: &Prepared,
    setup: Setup,
    deny: &CString,
    report: libc::c_int,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    let tell = |step: Step, errno: i32| {
        let mut rec = [0u8; 8];
        rec[..4].copy_from_slice(&(step as u32).to_ne_bytes());
        rec[4..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: a write of a local buffer to the report pipe.
        unsafe { libc::write(report, rec.as_ptr().cast(), rec.len()) };
    };
    let fatal = |step: Step, errno: i32| -> ! {
        tell(step, errno);
        // SAFETY: `_exit` ends this child only.
        unsafe { libc::_exit(126) }
    };
    let errno = || {
        // SAFETY: this child's own `errno`.
        unsafe { *libc::__errno_location() }
    };
    if setup.map_ids {
        // Only the host's user and group (an unprivileged process may map its own ids alone,
        // and its group only once `setgroups` is denied).
        let mapped = write_file(b"/proc/self/setgroups\0", deny)
            .and_then(|()| write_file(b"/proc/self/uid_map\0", &p.uid_map))
            .and_then(|()| write_file(b"/proc/self/gid_map\0", &p.gid_map));
        if let Err(e) = mapped {
            fatal(Step::Maps, e);
        }
    }
    if setup.keep_admin {
        // The new user namespace gave this child every capability in it; an `execve` by a
        // user other than root keeps only the ambient ones, which must be inheritable first.
        use rustix::thread::{capabilities, configure_capability_in_ambient_set, set_capabilities, CapabilitySet};
        let kept = capabilities(None).and_then(|mut sets| {
            sets.inheritable |= CapabilitySet::SYS_ADMIN;
            set_capabilities(None, sets)?;
            configure_capability_in_ambient_set(CapabilitySet::SYS_ADMIN, true)
        });
        if let Err(e) = kept {
            fatal(Step::Caps, e.raw_os_error());
        }
    }
    if setup.private_proc {
        // SAFETY: `mount` with valid C strings. The host's mounts keep propagating here (a
        // slave), but nothing mounted here reaches the host; then a `/proc` of this PID
        // namespace over the host's. A failure leaves the host's `/proc`: reported, not fatal.
        let ok = unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ) == 0
                && libc::mount(
                    c"proc".as_ptr(),
                    c"/proc".as_ptr(),
                    c"proc".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                ) == 0
        };
        if !ok {
            tell(Step::Proc, errno());
        }
    }
    // SAFETY: async-signal-safe calls on this child's own state and on data prepared by the
    // parent; `argv` and `envp` are NULL-terminated arrays of valid C strings.
    unsafe {
        // The death signal and the other "host is gone" signals stay blocked across exec,
        // so they wait for the launcher's signalfd instead of killing it before it is ready.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD] {
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0);
        // Out of the host's process group and session: a terminal's Ctrl-C or hang-up is for
        // the host; the launcher learns of the host's death from its socket and death signal.
        libc::setsid();
        libc::fcntl(p.sock, libc::F_SETFD, 0);
        libc::syscall(
            libc::SYS_execveat,
            p.exe.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        fatal(Step::Exec, errno())
    }
}

/// Run by the launcher first thing: what its start kept for it in a user namespace
/// (`CAP_SYS_ADMIN` as an ambient, inheritable capability) stays in its own permitted set
/// but leaves the sets its children inherit, so that port programs run without capabilities,
/// as the user, as OTP's do. Nothing to do for a launcher that kept none (then its children
/// inherit what the host's would).
pub(crate) fn launcher_caps() {
    use rustix::thread::{capabilities, configure_capability_in_ambient_set, set_capabilities, CapabilitySet};
    if std::env::var_os(CAPS_ENV).is_none() {
        return;
    }
    std::env::remove_var(CAPS_ENV);
    let _ = configure_capability_in_ambient_set(CapabilitySet::SYS_ADMIN, false);
    if let Ok(mut sets) = capabilities(None) {
        sets.inheritable.remove(CapabilitySet::SYS_ADMIN);
        let _ = set_capabilities(None, sets);
    }
}
