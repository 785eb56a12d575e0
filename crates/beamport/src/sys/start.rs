//! Starting the launcher: `clone` the host into a new PID namespace (a new user namespace as
//! well where the kernel wants one) and re-exec the host's own binary there, where
//! [`super::entry`] turns it into the launcher before `main` runs.

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

/// A started launcher.
#[derive(Debug)]
pub(crate) struct Started {
    pub pid: i32,
    pub isolation: Isolation,
    /// Why stronger isolations were refused.
    pub refused: Vec<(Isolation, io::Error)>,
}

struct Prepared {
    exe: OwnedFd,
    argv: Vec<CString>,
    envp: Vec<CString>,
    sock: i32,
    uid_map: CString,
    gid_map: CString,
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
    // SAFETY: getuid/getgid cannot fail and have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Ok(Prepared {
        exe,
        argv: vec![CString::new("beamport-launcher").expect("no NUL")],
        envp,
        sock: sock.as_raw_fd(),
        uid_map: CString::new(format!("0 {uid} 1")).expect("no NUL"),
        gid_map: CString::new(format!("0 {gid} 1")).expect("no NUL"),
    })
}

/// Starts the launcher with `sock` as its control socket (inherited across exec), trying each
/// isolation of `tiers` in turn (`Cgroup` and `Plain` are both ordinary children here; the
/// caller passes the cgroup through `extra_env`). Must be called from a thread that lives as
/// long as the host: the launcher's death signal fires when that thread ends.
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
        match clone_exec(&p, flags, isolation == Isolation::UserPidNamespace) {
            Ok(pid) => return Ok(Started { pid, isolation, refused }),
            Err(e) => refused.push((isolation, e)),
        }
    }
    Err(refused)
}

fn write_file(path: &[u8], data: &CString) -> bool {
    // SAFETY: `path` is NUL-terminated by the callers, `data` is a valid C string.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let b = data.as_bytes();
        let ok = libc::write(fd, b.as_ptr().cast(), b.len()) == b.len() as isize;
        libc::close(fd);
        ok
    }
}

fn clone_exec(p: &Prepared, ns_flags: libc::c_int, map_ids: bool) -> io::Result<i32> {
    let argv: Vec<*const libc::c_char> =
        p.argv.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> =
        p.envp.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let deny = CString::new("deny").expect("no NUL");
    let flags = (ns_flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: a raw `clone` without CLONE_VM and with a NULL stack behaves like `fork`: the
    // child gets a copy-on-write copy of the address space. The host may be multi-threaded,
    // so the child calls only async-signal-safe functions on data prepared above, then
    // execs or `_exit`s.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid as i32);
    }
    // SAFETY: child side of the clone; see above.
    unsafe {
        if map_ids
            && !(write_file(b"/proc/self/setgroups\0", &deny)
                && write_file(b"/proc/self/uid_map\0", &p.uid_map)
                && write_file(b"/proc/self/gid_map\0", &p.gid_map))
        {
            libc::_exit(126);
        }
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
        libc::_exit(127);
    }
}
