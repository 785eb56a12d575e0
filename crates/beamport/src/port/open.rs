//! `Port::open`: the options checked, the program's one typed spec built from them, the
//! driver started, and the port registered with its owner and the reactor.

use std::ffi::{CString, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::lending::{mark_lent, set_poll_candidate};
use super::options::SpawnOptions;
use super::state::{Inner, Phase, State, WatchMode};
use super::{Name, OpenError, Opt, Port, Settings, NEXT_ID, TABLE};
use crate::driver::spawn::SpawnDriver;
use crate::driver::{Driver, Drivers};
use crate::message::{Id, Reason};
use crate::process;
use crate::sys;
use crate::sys::child::{Exec, Layout};

/// `System.find_executable/1`: the full path of `name` found on `PATH`, or `None`.
///
/// ```
/// let echo = beamport::find_executable("echo").unwrap();
/// assert!(echo.ends_with("echo"));
/// assert_eq!(beamport::find_executable("no-such-program-here"), None);
/// ```
pub fn find_executable(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return sys::fd::check_executable(&p).is_ok().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file() && sys::fd::check_executable(p).is_ok())
}

impl Port {
    /// Opens a port (`Port.open/2`); the calling process becomes its owner and is linked to it.
    ///
    /// `{:spawn, cmd}` runs `/bin/sh -c "exec cmd"`: a missing program still opens, then exits
    /// with 127. `{:spawn_executable, path}` runs no shell; a missing file is `enoent`, a
    /// non-executable one `eacces`, both naming the path.
    ///
    /// Like OTP's `open_port`, it returns once the launcher has the request, not after the
    /// fork, so one caller can have many spawns in flight. [`Port::os_pid`] waits for the pid;
    /// a fork that fails (`eagain`, `enomem`) ends the port with that reason, as an exit signal.
    ///
    /// ```
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let echo = beamport::find_executable("echo").unwrap();
    /// let port = Port::open(Name::executable(echo), [Opt::Binary, Opt::args(["hello world"])]).unwrap();
    /// let msg = me.receive().unwrap();
    /// assert_eq!(msg.data().unwrap().bytes().as_ref(), b"hello world\n");
    /// # let _ = port.close();
    /// ```
    ///
    /// # Errors
    ///
    /// [`OpenError`], with OTP's name for each case.
    pub fn open(name: Name, opts: impl IntoIterator<Item = Opt>) -> Result<Port, OpenError> {
        let opts: Vec<Opt> = opts.into_iter().collect();
        let me = process::current();
        if let Some(r) = me.exit_reason() {
            return Err(OpenError::Exited(r));
        }
        let (settings, spawn) = Settings::parse(&name, &opts)?;
        let (exec, label) = child_spec(&name, &settings, &spawn)?;
        let engine = super::engine().map_err(OpenError::system)?;
        let driver = SpawnDriver::new(engine, exec, spawn.grace, send_buffer(&settings)).map_err(OpenError::system)?;
        // Forked here: lent to the opener from the start. It is likely to wait for the
        // program next, polling its socket and pidfd itself; else the reactor takes them back
        // within `LEND_FOR`.
        let lent = driver.forks_here() && settings.reads;
        let port = Port::new(me.pid(), label, settings, Drivers::Spawn(driver));
        let after = {
            let mut st = port.lock();
            st.phase = Phase::Open;
            if lent {
                st.watch.mode = WatchMode::Lent { poller: None };
                engine.still_lent(port.inner().id);
            } else if let Some(fd) = st.driver.io_fd() {
                if let Err(e) = engine.register(fd.as_fd(), port.inner().id, false) {
                    port.abandon(&mut st);
                    return Err(OpenError::system(e));
                }
                st.watch.mode = WatchMode::Reactor { write: false };
            }
            // Linked and owned before the start, so that an exit signal from a failed start
            // reaches the caller.
            if !process::add_link(me.pid(), Id::Port(port.clone())) || !process::adopt(me.pid(), &port) {
                process::remove_link(me.pid(), &Id::Port(port.clone()));
                port.abandon(&mut st);
                return Err(OpenError::Exited(me.exit_reason().unwrap_or(Reason::Noproc)));
            }
            let id = port.inner().id;
            match st.driver.start(id) {
                Ok(start) => port.on_start(&mut st, start),
                Err(e) => {
                    process::remove_link(me.pid(), &Id::Port(port.clone()));
                    port.abandon(&mut st);
                    return Err(OpenError::system(e));
                }
            }
        };
        after.run(&port);
        set_poll_candidate(&port);
        if lent {
            mark_lent();
        }
        Ok(port)
    }

    /// A port in the table, owned by `owner`, over `driver`, not yet started.
    pub(super) fn new(owner: process::Pid, label: String, settings: Settings, driver: Drivers) -> Port {
        let state = State::new(owner, &settings, driver);
        let inner = Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: label.into(),
            settings,
            state: Mutex::new(state),
            cv: Condvar::new(),
            unread: AtomicUsize::new(0),
            read_paused: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        };
        let port = Port(Arc::new(inner));
        TABLE.write().expect("port table").insert(port.id(), port.clone());
        port
    }
}

/// What the kernel may hold of a port's output for its program (`SO_SNDBUF`) before the
/// port's own queue, and so its busy limits, take the rest. With busy limits, about what
/// OTP's 64 KiB pipe holds in commands: a sender to a program that does not read is
/// suspended after about as many small commands as OTP's (~660 of 99 bytes: a Unix socket
/// charges each write its buffer's overhead, about 750 bytes, where a pipe counts bytes), and
/// bulk writes get 512 KiB. Without busy limits, a large buffer: fewer wake-ups on bulk
/// transfers. (The kernel doubles what it is asked for.)
fn send_buffer(settings: &Settings) -> usize {
    const OTP_PIPE_IN_COMMANDS: usize = 256 * 1024;
    const UNLIMITED: usize = 1 << 20;
    match settings.busy {
        Some((_, high)) => OTP_PIPE_IN_COMMANDS.max(high).min(UNLIMITED),
        None => UNLIMITED,
    }
}

/// The program's one typed spec, from the port's name and options, and the port's name as
/// `Port.info/1` reports it. `{:spawn, cmd}` runs `/bin/sh -c "exec cmd"`, as OTP does.
fn child_spec(name: &Name, settings: &Settings, spawn: &SpawnOptions) -> Result<(Exec, String), OpenError> {
    let nul = |s: &[u8]| OpenError::Badarg { what: format!("NUL byte in {:?}", String::from_utf8_lossy(s)) };
    let c = |b: Vec<u8>| CString::new(b).map_err(|e| nul(&e.into_vec()));
    let mut exec_fd = None;
    let (program, argv, label) = match name {
        Name::Spawn(cmd) => {
            if cmd.trim().is_empty() {
                return Err(OpenError::Badarg { what: "{:spawn, \"\"}: empty command".into() });
            }
            let argv = vec![c(b"sh".to_vec())?, c(b"-c".to_vec())?, c(format!("exec {cmd}").into_bytes())?];
            (c(b"/bin/sh".to_vec())?, argv, cmd.clone())
        }
        Name::Executable(path) => {
            if path.as_os_str().is_empty() {
                return Err(OpenError::Badarg { what: "{:spawn_executable, \"\"}: empty path".into() });
            }
            if let Err(e) = sys::fd::check_executable(path) {
                return Err(match e.raw_os_error() {
                    Some(libc::EACCES) | Some(libc::EPERM) => OpenError::Eacces { path: path.clone() },
                    Some(libc::ENOENT) | Some(libc::ENOTDIR) => OpenError::Enoent { path: path.clone() },
                    _ => OpenError::system(e),
                });
            }
            if in_host_view(path) {
                exec_fd = Some(sys::fd::open_for_exec(path).map_err(OpenError::system)?);
            }
            let p = path.as_os_str().as_bytes().to_vec();
            let mut argv = vec![c(spawn.arg0.as_ref().map_or(p.clone(), |a| a.as_bytes().to_vec()))?];
            for a in spawn.args.iter().flatten() {
                argv.push(c(a.as_bytes().to_vec())?);
            }
            (c(p)?, argv, path.to_string_lossy().into_owned())
        }
    };
    let cd = match &spawn.cd {
        Some(d) => Some(c(d.as_os_str().as_bytes().to_vec())?),
        None => None,
    };
    // The inherited environment has no NUL (it is made of C strings): only what the options
    // add is checked.
    for (k, v) in &spawn.env {
        for s in [Some(k), v.as_ref()].into_iter().flatten() {
            if s.as_bytes().contains(&0) {
                return Err(nul(s.as_bytes()));
            }
        }
    }
    let envp = merged_env(&spawn.env).into_iter().map(c).collect::<Result<_, _>>()?;
    let exec = Exec {
        program,
        argv,
        envp,
        // The opener's own working directory, unless the launcher forks (see the driver).
        cwd: None,
        cd,
        layout: if spawn.nouse_stdio { Layout::Fd34 } else { Layout::Stdio },
        reads: settings.reads,
        writes: settings.writes,
        stderr_to_stdout: spawn.stderr_to_stdout,
        death_signal: None,
        exec_fd,
    };
    Ok((exec, label))
}

/// Whether an executable's path means something else to a port program than to the host, so
/// that the host opens the file and the program is exec'd from that fd: paths into `/proc`
/// (`/proc/<pid>/exe`, `/proc/self/…`) and its aliases `/dev/fd/N`, `/dev/stdin` …, whose
/// pids and "self" are the host's here and the program's own there (a port program has a
/// `/proc` of its PID namespace, or, in a user namespace, may not follow the host's
/// `/proc/<pid>/exe`). Every other path names the same file in both views (the launcher's
/// mount namespace is the host's, but for `/proc`), and is exec'd by its path, as OTP does:
/// a program's `comm` and a script's `$0` come from it.
fn in_host_view(path: &std::path::Path) -> bool {
    use std::path::Component;
    let mut parts = path.components().filter(|c| *c != Component::CurDir);
    if parts.next() != Some(Component::RootDir) {
        return false;
    }
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(a)), _) if a == "proc" => true,
        (Some(Component::Normal(a)), Some(Component::Normal(b))) if a == "dev" => {
            ["fd", "stdin", "stdout", "stderr"].iter().any(|x| b == *x)
        }
        _ => false,
    }
}

/// The program's environment: the host's merged with `{:env, ...}` (`changes`; a `None` or
/// empty value unsets), as `KEY=value` strings, each with room for the NUL that makes it a C
/// string (no reallocation then).
fn merged_env(changes: &[(OsString, Option<OsString>)]) -> Vec<Vec<u8>> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    for (k, v) in changes {
        env.retain(|(x, _)| x != k);
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            env.push((k.clone(), v.clone()));
        }
    }
    env.into_iter()
        .map(|(k, v)| {
            let (k, v) = (k.as_bytes(), v.as_bytes());
            let mut kv = Vec::with_capacity(k.len() + v.len() + 2);
            kv.extend_from_slice(k);
            kv.push(b'=');
            kv.extend_from_slice(v);
            kv
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::in_host_view;
    use std::path::Path;

    #[test]
    fn paths_into_proc_are_the_hosts() {
        for p in ["/proc/1/exe", "/proc/self/exe", "/./proc/42/cwd/prog", "/dev/fd/3", "/dev/stdin", "/dev/./fd/7"] {
            assert!(in_host_view(Path::new(p)), "{p}");
        }
        for p in ["/usr/bin/cat", "proc/1/exe", "./proc/1/exe", "/dev/null", "/devices/fd/3", "/procs/1/exe", "cat"] {
            assert!(!in_host_view(Path::new(p)), "{p}");
        }
    }
}
