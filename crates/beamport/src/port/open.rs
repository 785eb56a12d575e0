//! `Port::open`: the options checked, the program's one typed spec built from them, the
//! driver started, and the port registered with its owner and the reactor.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::lending::{mark_lent, set_poll_candidate};
use super::options::child_spec;
use super::state::{Inner, Phase, State, WatchMode};
use super::{Name, OpenError, Opt, Port, Settings, NEXT_ID, TABLE};
use crate::driver::spawn::SpawnDriver;
use crate::driver::{Driver, Drivers};
use crate::message::{Id, Reason};
use crate::process;
use crate::sys;

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
