//! # beamport
//!
//! Erlang/Elixir *ports* for Rust: start programs outside the host process and talk to them
//! by message passing, with the semantics of OTP's `open_port/2` and Elixir's `Port`, and
//! without their known faults: no child outlives its host (not even when the host is killed
//! with SIGKILL), one fd per port, and backpressure both ways.
//!
//! ```
//! use beamport::{process, Name, Opt, Port, Request};
//!
//! let me = process::current();                     // the calling thread's process: self()
//! let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
//! port.send(me.pid(), Request::command("hello"));  // send port, {self(), {:command, "hello"}}
//! port.command("world").unwrap();                  // Port.command(port, "world")
//! let mut got = Vec::new();
//! while got.len() < 10 {
//!     got.extend_from_slice(me.receive().unwrap().data().unwrap().bytes());
//! }
//! assert_eq!(got, b"helloworld");
//! port.close().unwrap();
//! ```
//!
//! The layers, bottom up: `sys` (the only `unsafe`), the launcher (a helper process that
//! starts every child), the I/O engine (one reactor for all ports), [`framing`], the port
//! core ([`Port`]), and [`process`] (pids, mailboxes, links, monitors).
#![deny(missing_docs, missing_debug_implementations)]
#![deny(unsafe_code)]

mod driver;
mod engine;
pub mod framing;
mod launcher;
mod message;
mod port;
pub mod process;
pub mod program;
mod spawning;
mod sys;
#[cfg(feature = "term")]
pub mod term;

pub use message::{Data, ExitStatus, Id, Message, Port, PortMsg, Reason, Ref, UserMsg};
pub use port::{
    find_executable, CommandFlags, Item, ItemValue, Name, OpenError, Opt, PortError, PortInfo, Request, DEFAULT_GRACE,
    DEFAULT_PACKET_SIZE, DEFAULT_READ_WINDOW, DEFAULT_SPIN_WAIT,
};
pub use process::{Exited, Pid, Process};

/// The launcher's main, which `sys`'s pre-`main` hook runs in a re-executed host binary: the
/// crate root wires the two together, so that `sys` stays the bottom layer.
pub(crate) fn run_launcher(sock: std::os::fd::OwnedFd) -> i32 {
    launcher::server::run(sock)
}
pub use spawning::{set_spawning, AlreadyStarted, Spawning};

/// How the no-orphan guarantee is enforced on this machine (for `beamport doctor`).
pub mod doctor {
    /// The launcher's isolation tier and what was tried.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = beamport::doctor::report().unwrap();
    /// let tiers = ["pid-namespace", "user+pid-namespace", "cgroup-v2 (cgroup.kill)"];
    /// assert!(tiers.contains(&r.tier) || r.tier.starts_with("process-groups"));
    /// assert!(!r.guarantee.is_empty());
    /// assert!(r.launcher_pid > 0 && r.nofile_limit > 0);
    /// for (tier, why) in &r.refused {
    ///     println!("{tier} refused: {why}"); // stronger tiers this machine does not allow
    /// }
    /// match &r.opener_forks {
    ///     Ok(()) => assert_eq!(r.tier, "pid-namespace"), // host threads fork into it
    ///     Err(why) => println!("every child is forked by the launcher: {why}"),
    /// }
    /// if let Err(why) = &r.own_proc {
    ///     println!("port programs see the host's /proc: {why}");
    /// }
    /// let before = r.spawns;
    /// let port = beamport::Port::open(beamport::Name::spawn("true"), []).unwrap();
    /// let after = beamport::doctor::report().unwrap().spawns;
    /// assert_eq!(after.by_opener + after.by_launcher, before.by_opener + before.by_launcher + 1);
    /// # let _ = port.close();
    /// ```
    #[derive(Debug, Clone)]
    pub struct Report {
        /// The launcher's pid, in the host's PID namespace.
        pub launcher_pid: i32,
        /// The active tier, e.g. `"pid-namespace"`.
        pub tier: &'static str,
        /// What this tier guarantees.
        pub guarantee: &'static str,
        /// Stronger tiers that were refused, and why.
        pub refused: Vec<(&'static str, String)>,
        /// The fd limit in force (raised to the hard limit at start).
        pub nofile_limit: u64,
        /// `Ok` if a port's opener forks its program itself, into the launcher's PID
        /// namespace, as `posix_spawn` would (while at most 64 such programs run and the
        /// host has fewer than 1024 fds and does not ignore `SIGCHLD`; else the launcher forks,
        /// in parallel with the opener, at one fd per port); else why the launcher forks every
        /// child (one round trip to it per spawn). A program the host forks is the host's
        /// child, as one of `posix_spawn` is: a `waitpid(-1)` of the host's own may reap it
        /// first, and its port then reports it killed (`{:exit_status, 137}`). A host that
        /// reaps any child it has calls [`crate::set_spawning`]`(Spawning::Launcher)` first.
        pub opener_forks: Result<(), String>,
        /// `Ok` if a port program's `/proc` agrees with its pids: `getpid()`, `/proc/self`,
        /// `/proc/<its pid>` and `ps` all name the program itself. In the PID namespace tiers
        /// it has a `/proc` of the namespace, mounted for the launcher, which shows the
        /// launcher (pid 1) and the host's port programs, and none of the host's other
        /// processes; in the other tiers programs have the host's pids and the host's
        /// `/proc`. `Err` says why a namespace tier could not mount one: its programs then see
        /// the host's `/proc`, where their own pids name other processes.
        pub own_proc: Result<(), String>,
        /// How many programs this host has started so far, by each path.
        pub spawns: Spawns,
    }

    /// Programs started by the host since the launcher started, by who forked them: the
    /// opening thread (see [`Report::opener_forks`]) or the launcher. Read it before and
    /// after some work to see which path that work took (`beamport bench` does).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Spawns {
        /// Forked by the thread that opened the port, into the launcher's PID namespace.
        pub by_opener: u64,
        /// Asked of the launcher, which forked them (or failed to).
        pub by_launcher: u64,
    }

    fn tier_name(i: crate::sys::start::Isolation) -> &'static str {
        use crate::sys::start::Isolation::*;
        match i {
            PidNamespace => "pid-namespace",
            UserPidNamespace => "user+pid-namespace",
            Cgroup => "cgroup-v2 (cgroup.kill)",
            Plain => "process-groups+subreaper+pdeathsig",
        }
    }

    /// Starts the engine if needed and reports how children are contained.
    ///
    /// ```
    /// let r = beamport::doctor::report().unwrap();
    /// assert!(r.launcher_pid > 0);
    /// ```
    ///
    /// # Errors
    ///
    /// The launcher could not be started.
    pub fn report() -> std::io::Result<Report> {
        let e = crate::port::engine()?;
        let l = &e.launcher;
        let guarantee = match l.isolation {
            crate::sys::start::Isolation::Cgroup => {
                "every process started through a port, escapees included, is in one cgroup: the launcher kills it when the host dies, the host kills it when the launcher dies; if both die by SIGKILL at once, only the launcher's own children (not their descendants) die (PDEATHSIG)"
            }
            crate::sys::start::Isolation::Plain => {
                "children end when the host dies (launcher ladder) or when the launcher dies (PDEATHSIG, the launcher's own children only); escapees are found through the subreaper while the launcher lives"
            }
            _ => "every process started through a port dies when the launcher dies, even by SIGKILL (PID 1 of its namespace); the launcher dies when the host does",
        };
        Ok(Report {
            launcher_pid: l.pid,
            tier: tier_name(l.isolation),
            guarantee,
            refused: l.refused.iter().map(|(i, e)| (tier_name(*i), e.clone())).collect(),
            nofile_limit: l.nofile_limit,
            opener_forks: l.host_fork_refused.clone().map_or(Ok(()), Err),
            own_proc: l.proc_refused.clone().map_or(Ok(()), Err),
            spawns: Spawns {
                by_opener: e.started_here.load(std::sync::atomic::Ordering::Relaxed),
                by_launcher: e.started_by_launcher.load(std::sync::atomic::Ordering::Relaxed),
            },
        })
    }
}
