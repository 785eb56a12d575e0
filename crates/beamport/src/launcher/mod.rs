//! The launcher: one helper process per host, in the spirit of OTP's `erl_child_setup`,
//! that starts every child, reaps it, reports its exit status, runs the kill ladder, and
//! ends every descendant when the host dies.
//!
//! The host starts it by re-executing its own binary (see `sys::entry`), inside a new PID
//! namespace when the kernel allows: as PID 1 there, its death — even by SIGKILL — makes the
//! kernel kill every process in the namespace.

pub(crate) mod proto;
pub(crate) mod server;
