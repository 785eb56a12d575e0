//! The thing behind a port, as the core sees it through the driver: its start (which
//! `os_pid` and `info` wait for), its exit status (which `exit_status` and `:eof` wait for),
//! and signals to it.

use std::sync::MutexGuard;

use super::state::{Phase, Reading, State};
use super::{errno_name, After, Port, PortError};
use crate::driver::{Driver, Start};
use crate::engine::{ChildNews, Engine};
use crate::message::{ExitStatus, Reason};

impl Port {
    /// The program's OS pid (in the host's PID namespace), while the port is open.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{Name, Port};
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// let pid = port.os_pid().unwrap();
    /// assert!(pid > 0);
    /// port.close().unwrap();
    /// assert_eq!(port.os_pid(), None);
    /// ```
    pub fn os_pid(&self) -> Option<i32> {
        let st = self.started();
        st.driver.os_pid().filter(|_| st.phase != Phase::Dead)
    }

    /// The program's pid as it sees itself (`getpid()`, what `$$` prints), while the port is
    /// open and the program runs. Inside the launcher's PID namespace (see
    /// [`crate::doctor::Report`]) it differs from [`Port::os_pid`], the same process seen from
    /// the host: a pidfile the program writes holds this one, and its `/proc` and `ps` agree
    /// with it. In the tiers without a namespace the two are the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("sh -c 'echo $$; exec cat'"), [Opt::Binary]).unwrap();
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("its pid");
    /// let printed: i32 = msg.data().unwrap().as_str().unwrap().trim().parse().unwrap();
    /// assert_eq!(port.program_pid(), Some(printed));
    /// port.close().unwrap();
    /// assert_eq!(port.program_pid(), None);
    /// ```
    pub fn program_pid(&self) -> Option<i32> {
        let mut st = self.started();
        if st.phase == Phase::Dead {
            return None;
        }
        st.driver.program_pid()
    }

    /// The state, once the driver's start has been answered (at once if the port is closed:
    /// a closed port has no pid to wait for).
    pub(super) fn started(&self) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        while !st.behind.started && st.phase != Phase::Dead {
            st = self.cv_wait(st);
        }
        st
    }

    /// The program's exit status once the launcher has reported it: possibly before the
    /// port's EOF, while something the program started still holds its output (OTP sends
    /// `{:exit_status, n}` only at EOF), and still after the port closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Message, Name, Opt, Port, PortMsg};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("sh -c 'exit 3'"), [Opt::ExitStatus]).unwrap();
    /// match me.receive_timeout(Duration::from_secs(5)).unwrap() {
    ///     Some(Message::Port(_, PortMsg::ExitStatus(st))) => assert_eq!(st.code(), 3),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(!port.is_open()); // closed at EOF
    /// assert_eq!(port.exit_status().map(|st| st.code()), Some(3)); // still known
    /// ```
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.lock().behind.exit.map(ExitStatus::from_raw)
    }

    /// Sends a signal (for example `libc::SIGTERM`) to the port's program and its process
    /// group: everything it started that stayed in its group.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("sleep 10"), [Opt::ExitStatus]).unwrap();
    /// port.signal(libc::SIGTERM).unwrap();
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("exit status");
    /// assert_eq!(format!("{msg:?}"), format!("{{{port:?}, {{:exit_status, 143}}}}")); // 128 + 15
    /// assert!(!port.is_open()); // then EOF closed it
    /// assert!(port.signal(libc::SIGTERM).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`PortError::Closed`] once the port is closed.
    pub fn signal(&self, signal: i32) -> Result<(), PortError> {
        self.signal_inner(signal, true)
    }

    /// SIGKILL to the program's whole process group.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("sleep 10"), [Opt::ExitStatus]).unwrap();
    /// port.kill().unwrap();
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("exit status");
    /// assert_eq!(format!("{msg:?}"), format!("{{{port:?}, {{:exit_status, 137}}}}")); // 128 + 9
    /// assert_eq!(port.exit_status().unwrap().signal(), Some(libc::SIGKILL));
    /// assert!(port.kill().is_err()); // closed at EOF
    /// ```
    ///
    /// # Errors
    ///
    /// [`PortError::Closed`] once the port is closed.
    pub fn kill(&self) -> Result<(), PortError> {
        self.signal_inner(libc::SIGKILL, true)
    }

    fn signal_inner(&self, signal: i32, group: bool) -> Result<(), PortError> {
        let mut st = self.lock();
        if st.phase == Phase::Dead {
            return Err(PortError::Closed(self.label()));
        }
        st.driver.signal(signal, group);
        Ok(())
    }

    /// What the driver's start said.
    pub(super) fn on_start(&self, st: &mut State, start: Start) -> After {
        match start {
            Start::Running => {
                st.behind.started = true;
                After::default()
            }
            Start::Pending => After::default(),
            Start::Failed(errno) => self.start_failed(st, errno),
        }
    }

    /// The thing behind could not start: the port exits with the error's name, as OTP's
    /// does when its forker fails (`eagain`, `enomem`, or `epipe` if the launcher is gone).
    fn start_failed(&self, st: &mut State, errno: i32) -> After {
        st.behind.started = true;
        self.cv_wake(st);
        let reason = Reason::atom(errno_name(&std::io::Error::from_raw_os_error(errno)));
        self.begin_close(st, reason, false, None)
    }

    /// News from the engine of the thing behind the port.
    pub(super) fn on_child_news(&self, news: ChildNews) {
        let after = {
            let mut st = self.lock();
            let after = match news {
                ChildNews::Spawned { ns_pid, host_pid } => {
                    st.behind.started = true;
                    self.cv_wake(&st);
                    st.driver.spawned(ns_pid, host_pid);
                    let mut after = After::default();
                    if st.phase != Phase::Dead && st.inp.reading == Reading::Eof {
                        self.on_eof(&mut st, &mut after);
                    }
                    after
                }
                ChildNews::SpawnFailed(errno) => {
                    st.driver.spawn_failed();
                    self.start_failed(&mut st, errno)
                }
                ChildNews::Exited { raw, group_left } => self.child_exited(&mut st, raw, group_left),
            };
            self.forget_if_done(&st);
            after
        };
        after.run(self);
    }

    /// The thing behind ended (reported by the launcher, or reaped here).
    pub(super) fn child_exited(&self, st: &mut State, raw: i32, group_left: bool) -> After {
        st.behind.exit = Some(raw);
        st.driver.exited(group_left);
        st.watch.exit_watched = false;
        let mut after = After::default();
        if st.inp.reading == Reading::Eof {
            self.finish_input(st, &mut after);
        }
        after
    }

    /// Has the reactor watch the driver's exit fd, to reap what is behind the port.
    pub(super) fn watch_exit(&self, st: &mut State, engine: &Engine) {
        if st.watch.exit_watched {
            return;
        }
        if let Some(p) = st.driver.exit_fd() {
            use std::os::fd::AsFd;
            st.watch.exit_watched = engine.watch_exit(p.as_fd(), self.inner().id).is_ok();
        }
    }
}
