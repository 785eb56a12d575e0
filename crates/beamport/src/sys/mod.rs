//! The operating-system layer: the only module with `unsafe` and `cfg(target_os)`.
//!
//! # Contract
//!
//! Every platform provides:
//! - [`fd`]: stream socket pairs born `CLOEXEC`, non-blocking switches, `RLIMIT_NOFILE` raising,
//!   `access(X_OK)`, `shutdown(SHUT_WR)`, and `writev`.
//! - [`child`]: fork + exec of one prepared child (`setsid`, fds 0/1/2 or 3/4, `chdir`, a clean
//!   signal state, death signal), from the launcher, or from a host thread into the
//!   launcher's PID namespace (with a pidfd, and every handler reset in the child).
//! - [`start`]: starting the launcher from a multi-threaded host, inside a new PID namespace
//!   where the kernel allows it.
//! - [`signal`]: a pollable signal descriptor for `SIGCHLD` and termination signals, `kill`,
//!   `killpg`, `pidfd_send_signal`, and reaping (by pid, or through a pidfd).
//! - [`entry`]: the hook that turns a re-executed host binary into the launcher before `main`.
//! - [`cgroup`]: a cgroup v2 group with `cgroup.kill`, the tier below PID namespaces.
//! - [`msg`]: Unix-socket messages carrying fds, and pid translation between namespaces.
//! - [`stdio`]: adopting fds 3 and 4 for port programs (`nouse_stdio`).
//!
//! Linux is the first (and, for now, only) platform: PID namespaces, `signalfd`, `pidfd`,
//! `close_range` and cgroups have no portable equivalent, and a port that could orphan its
//! children would break beamport's promise. Other systems get a clear compile error.
#![allow(unsafe_code)]

#[cfg(not(target_os = "linux"))]
compile_error!("beamport supports Linux only for now: its no-orphan launcher needs PID namespaces or cgroups");

pub(crate) mod cgroup;
pub(crate) mod child;
pub(crate) mod entry;
pub(crate) mod fd;
pub(crate) mod msg;
pub(crate) mod signal;
pub(crate) mod start;
pub(crate) mod stdio;
