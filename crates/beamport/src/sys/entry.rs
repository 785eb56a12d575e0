//! The launcher's entry point. A host starts its launcher by re-executing its own binary with
//! [`super::start::LAUNCHER_ENV`] set; this constructor, which runs before `main`, sees the
//! variable and runs the launcher instead of the host's `main`. That is why `cargo add
//! beamport` is the whole installation: every binary that links beamport carries the launcher.

use std::os::fd::{FromRawFd, OwnedFd};

extern "C" fn beamport_launcher_entry() {
    let Some(value) = std::env::var_os(super::start::LAUNCHER_ENV) else { return };
    let Some(fd) = value.to_str().and_then(|s| s.parse::<i32>().ok()) else { return };
    std::env::remove_var(super::start::LAUNCHER_ENV);
    // SAFETY: the host passed this fd, open and owned by nobody else in this new process,
    // for exactly this purpose.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let code = crate::run_launcher(sock);
    std::process::exit(code);
}

#[used]
#[link_section = ".init_array"]
static LAUNCHER_ENTRY: extern "C" fn() = beamport_launcher_entry;
