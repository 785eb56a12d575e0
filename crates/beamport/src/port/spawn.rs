//! Starting the program: `Port::open` (options, the socket pair, the environment), forking
//! it on the opener's thread or through the launcher, and what the port learns of the
//! program's start and exit.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use bytes::BytesMut;

use super::{
    errno_name, mark_lent, set_direct, After, Inner, Name, OpenError, Opt, Phase, Port, Settings, State, NEXT_ID, PORTS,
};
use crate::engine;
use crate::framing::Decoder;
use crate::message::{Id, Reason};
use crate::process;
use crate::sys;

/// `SO_SNDBUF` of both ends of a port's socket.
const SOCKET_BUFFER: usize = 1 << 20;

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
        let settings = Settings::parse(&name, &opts)?;
        let mut exe = None;
        let (program, argv, label) = match &name {
            Name::Spawn(cmd) => {
                if cmd.trim().is_empty() {
                    return Err(OpenError::Badarg { what: "{:spawn, \"\"}: empty command".into() });
                }
                let argv = vec![b"sh".to_vec(), b"-c".to_vec(), format!("exec {cmd}").into_bytes()];
                (b"/bin/sh".to_vec(), argv, cmd.clone())
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
                    exe = Some(sys::fd::open_for_exec(path).map_err(OpenError::system)?);
                }
                let p = path.as_os_str().as_bytes().to_vec();
                let mut argv = vec![settings.arg0.as_ref().map_or(p.clone(), |a| a.as_bytes().to_vec())];
                argv.extend(settings.args.iter().flatten().map(|a| a.as_bytes().to_vec()));
                (p, argv, path.to_string_lossy().into_owned())
            }
        };
        let cd = settings.cd.as_ref().map(|d| d.as_os_str().as_bytes().to_vec()).unwrap_or_default();
        // The inherited environment has no NUL (it is made of C strings): only what the
        // options add is checked.
        let changes = settings.env.iter().flat_map(|(k, v)| [Some(k.as_bytes()), v.as_ref().map(|v| v.as_bytes())]);
        for s in argv.iter().map(Vec::as_slice).chain([program.as_slice(), cd.as_slice()]).chain(changes.flatten()) {
            if s.contains(&0) {
                return Err(OpenError::Badarg { what: format!("NUL byte in {:?}", String::from_utf8_lossy(s)) });
            }
        }
        let envp = merged_env(&settings.env);
        // What only the spawn needs is not kept for the port's lifetime.
        let mut settings = settings;
        settings.env = Vec::new();
        settings.args = None;
        settings.arg0 = None;
        settings.cd = None;
        let engine = engine::get().map_err(OpenError::system)?;
        let (host, child) = sys::fd::stream_pair().map_err(OpenError::system)?;
        sys::fd::set_nonblocking(host.as_fd(), true).map_err(OpenError::system)?;
        // Bigger socket buffers mean fewer wake-ups on bulk transfers; the kernel allocates
        // them only as data is queued, so idle ports cost nothing more.
        sys::fd::set_send_buffer(host.as_fd(), SOCKET_BUFFER);
        sys::fd::set_send_buffer(child.as_fd(), SOCKET_BUFFER);
        let port = Port(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: label.into(),
            state: Mutex::new(State {
                phase: Phase::Opening,
                owner: me.pid(),
                links: vec![me.pid()],
                monitors: Vec::new(),
                input: 0,
                output: 0,
                queue: VecDeque::new(),
                queued: 0,
                busy: false,
                decoder: Decoder::new(settings.framing),
                rbuf: BytesMut::new(),
                fd: Some(Arc::new(host)),
                read_eof: false,
                input_done: false,
                exit: None,
                close_input: false,
                input_closed: false,
                reply_closed: None,
                busy_wakers: Vec::new(),
                write_armed: false,
                group_left: false,
                registered: false,
                spawned: false,
                early_signals: Vec::new(),
                direct: None,
                lent: false,
                forked_here: None,
                replying: false,
                pidfd: None,
                cv_waiters: 0,
                pidfd_watched: false,
            }),
            settings,
            cv: Condvar::new(),
            unread: AtomicUsize::new(0),
            read_paused: AtomicBool::new(false),
            os_pid: AtomicI32::new(-1),
            child_pid: AtomicI32::new(-1),
        }));
        let s = &port.0.settings;
        let mut flags = 0;
        if s.reads {
            flags |= crate::launcher::proto::flags::READS;
        }
        if s.writes {
            flags |= crate::launcher::proto::flags::WRITES;
        }
        if s.nouse_stdio {
            flags |= crate::launcher::proto::flags::NOUSE_STDIO;
        }
        if s.stderr_to_stdout {
            flags |= crate::launcher::proto::flags::STDERR_TO_STDOUT;
        }
        PORTS.write().expect("port table").insert(port.0.id, port.clone());
        let here = engine.direct_ok(child.as_fd());
        let lent = here && port.0.settings.reads;
        {
            let mut st = port.lock();
            st.phase = Phase::Open;
            if lent {
                // Forked here: lent to the opener from the start. It is likely to wait for the
                // program next, polling its socket and pidfd itself; else the reactor takes
                // them back within `LEND_FOR`.
                st.lent = true;
                engine.still_lent(port.0.id);
            } else {
                let fd = st.fd.as_ref().expect("fd until closed");
                let registered = engine.register(fd.as_fd(), port.0.id, false);
                st.registered = registered.is_ok();
                if let Err(e) = registered {
                    port.abandon(&mut st);
                    return Err(OpenError::system(e));
                }
            }
        }
        // Linked before the spawn, so that an exit signal from a failed spawn reaches the caller.
        if !process::add_link(me.pid(), Id::Port(port.clone())) {
            port.abandon(&mut port.lock());
            return Err(OpenError::Exited(me.exit_reason().unwrap_or(Reason::Noproc)));
        }
        // A child forked here starts in the host's working directory; the launcher's is told.
        let cwd = if here { Vec::new() } else { current_dir() };
        if exe.is_some() {
            flags |= crate::launcher::proto::flags::EXEC_FD;
        }
        let spec = crate::launcher::proto::SpawnSpec { flags, program, argv, envp, cwd, cd };
        // Forked here when the host may (as `posix_spawn` would, into the launcher's PID
        // namespace); else the launcher answers later (`on_spawned`), and many opens can be
        // in flight at once.
        let sent = if here { port.spawn_here(engine, spec, child, exe) } else { engine.spawn(&port, spec, child, exe) };
        if let Err(e) = sent {
            process::remove_link(me.pid(), &Id::Port(port.clone()));
            port.abandon(&mut port.lock());
            return Err(OpenError::system(e));
        }
        set_direct(&port);
        if lent {
            mark_lent();
        }
        Ok(port)
    }

    /// Called by the engine when the launcher has started the program.
    pub(crate) fn on_spawned(&self, pid: i32, host_pid: i32) {
        let (after, signals) = {
            let mut st = self.lock();
            self.0.child_pid.store(pid, Ordering::Relaxed);
            self.0.os_pid.store(host_pid, Ordering::Relaxed);
            st.spawned = true;
            self.cv_wake(&st);
            let signals = std::mem::take(&mut st.early_signals);
            let mut after = After::default();
            if st.phase == Phase::Dead {
                // Closed before the answer: `finish` left the program to us.
                if let Ok(e) = engine::get() {
                    signals.iter().for_each(|&(sig, group)| e.signal(pid, sig, group));
                    e.release(pid, self.0.settings.grace, false);
                }
                return;
            }
            if st.read_eof {
                self.on_eof(&mut st, &mut after);
            }
            (after, signals)
        };
        if let Ok(e) = engine::get() {
            signals.into_iter().for_each(|(sig, group)| e.signal(pid, sig, group));
        }
        after.run(self);
    }

    /// Called by the engine when the launcher could not start the program (`fork` failed,
    /// or the launcher is gone): the port exits with the error's name, as OTP's does when its
    /// forker fails.
    pub(crate) fn on_spawn_failed(&self, errno: i32) {
        let after = {
            let mut st = self.lock();
            st.spawned = true;
            st.early_signals.clear();
            self.cv_wake(&st);
            let reason = Reason::atom(errno_name(&io::Error::from_raw_os_error(errno)));
            self.begin_close(&mut st, reason, false, None)
        };
        after.run(self);
    }

    /// Called by the engine when the program has exited (reported by the launcher, or
    /// reaped by the reactor when the host forked it).
    pub(crate) fn on_child_exit(&self, raw: i32, group_left: bool) {
        let after = {
            let mut st = self.lock();
            self.child_exited(&mut st, raw, group_left)
        };
        after.run(self);
    }

    pub(super) fn child_exited(&self, st: &mut State, raw: i32, group_left: bool) -> After {
        st.exit = Some(raw);
        st.group_left = group_left;
        st.pidfd = None;
        st.pidfd_watched = false;
        let mut after = After::default();
        if st.read_eof {
            self.finish_input(st, &mut after);
        }
        after
    }

    /// Forks the program on this thread ([`engine::Engine::spawn_direct`]): the port is
    /// spawned when this returns. Falls back to the launcher if the pidfd cannot be had (the
    /// fd limit), since that way needs no fd more.
    fn spawn_here(
        &self,
        engine: &engine::Engine,
        spec: crate::launcher::proto::SpawnSpec,
        child: OwnedFd,
        exe: Option<OwnedFd>,
    ) -> io::Result<()> {
        // The child starts in the host's working directory: no `chdir` to it.
        let cspec = spec.into_child(child, exe, crate::launcher::proto::Forker::Host)?;
        let mut st = self.lock();
        // Under the port's lock: the reactor may reap the child before this records it.
        match engine.spawn_direct(self, cspec) {
            Ok(sp) => {
                self.0.os_pid.store(sp.pid, Ordering::Relaxed);
                st.spawned = true;
                st.forked_here = Some(sp.announce);
                st.pidfd = Some(sp.pidfd);
                if !st.lent {
                    self.watch_pidfd(&mut st, engine);
                }
                Ok(())
            }
            // No fd for the pidfd, or too many children of the host's between fork and exec.
            Err((e, Some(cspec))) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN)) => {
                drop(st);
                let (spec, io, exe) = crate::launcher::proto::SpawnSpec::from_child(*cspec, current_dir());
                engine.spawn(self, spec, io, exe)
            }
            Err((e, _)) => {
                drop(st);
                self.on_spawn_failed(e.raw_os_error().unwrap_or(libc::EIO));
                Ok(())
            }
        }
    }
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

/// The host's working directory, which a program the launcher forks starts in.
fn current_dir() -> Vec<u8> {
    std::env::current_dir().map(|d| d.into_os_string().into_vec()).unwrap_or_default()
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
