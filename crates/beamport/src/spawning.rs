//! Who forks port programs: the opening thread where it may, or always the launcher.

use std::sync::Mutex;

/// Who forks the programs of ports, chosen once per host with [`set_spawning`] before the
/// first port opens.
///
/// # Examples
///
/// ```
/// use beamport::Spawning;
/// assert_eq!(Spawning::default(), Spawning::Opener);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spawning {
    /// The opening thread forks the program itself, into the launcher's PID namespace, where
    /// the host may (a PID-namespace tier, at most 64 such programs running, fewer than
    /// 1024 host fds, `SIGCHLD` not ignored), as `posix_spawn` would but without waiting for
    /// its `execve`; else the launcher forks. A host that is not root gets there through a
    /// short-lived task that enters the launcher's user namespace for it.
    /// Such a program is the host's child: a `waitpid(-1)` of the host's own can take its
    /// exit status, and its port then reports it killed (`{:exit_status, 137}`).
    #[default]
    Opener,
    /// The launcher forks every program: none is ever the host's child, so a host that
    /// reaps any child it has (`waitpid(-1)`, as an init process does) cannot take a port's
    /// exit status. One round trip to the launcher per spawn. `BEAMPORT_SPAWNING=launcher` in the
    /// environment chooses this too.
    Launcher,
}

/// [`set_spawning`] came too late.
///
/// ```
/// use beamport::{set_spawning, AlreadyStarted, Name, Port, Spawning};
///
/// let port = Port::open(Name::spawn("true"), []).unwrap(); // beamport starts here
/// let late: AlreadyStarted = set_spawning(Spawning::Launcher).unwrap_err();
/// assert_eq!(late.current, Spawning::Opener); // the default, kept
/// assert!(late.to_string().contains("before the first port opens"));
/// # drop(port);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("beamport has started already (spawning {current:?}): set_spawning must come before the first port opens")]
pub struct AlreadyStarted {
    /// What beamport started with, and keeps.
    pub current: Spawning,
}

/// The choice, and whether beamport has started with it (after which it is fixed).
static CHOICE: Mutex<(Spawning, bool)> = Mutex::new((Spawning::Opener, false));

/// Chooses who forks port programs, for the rest of the host's life. Call it before the
/// first port opens (or [`crate::doctor::report`] runs): beamport reads the choice once, when
/// it starts.
///
/// # Examples
///
/// ```
/// use beamport::{doctor, Name, Opt, Port, Spawning};
///
/// beamport::set_spawning(Spawning::Launcher).unwrap();
/// let port = Port::open(Name::spawn("true"), [Opt::ExitStatus]).unwrap();
/// assert!(doctor::report().unwrap().opener_forks.is_err()); // the launcher forks
/// let late = beamport::set_spawning(Spawning::Opener).unwrap_err();
/// assert_eq!(late.current, Spawning::Launcher);
/// # drop(port);
/// ```
///
/// # Errors
///
/// [`AlreadyStarted`] once beamport has started; its choice stays.
pub fn set_spawning(spawning: Spawning) -> Result<(), AlreadyStarted> {
    let mut c = CHOICE.lock().unwrap_or_else(|e| e.into_inner());
    if c.1 {
        return Err(AlreadyStarted { current: c.0 });
    }
    c.0 = spawning;
    Ok(())
}

/// The choice beamport starts with; fixes it.
pub(crate) fn take() -> Spawning {
    let mut c = CHOICE.lock().unwrap_or_else(|e| e.into_inner());
    c.1 = true;
    c.0
}
