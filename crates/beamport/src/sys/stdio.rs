//! The fds a port program talks on when its port was opened with
//! `nouse_stdio`: it reads the port's commands from fd 3 and writes its
//! replies to fd 4 (OTP's `erl_child_setup` dups the pipes there).

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::{fcntl_setfd, FdFlags};

/// Where a `nouse_stdio` program reads the port's commands.
const COMMAND_FD: RawFd = 3;
/// Where a `nouse_stdio` program writes to the port.
const REPLY_FD: RawFd = 4;

/// Set once fds 3 and 4 have been adopted: they may have one owner only.
static ADOPTED: AtomicBool = AtomicBool::new(false);

/// Takes ownership of fds 3 and 4, as `(reader, writer)`.
///
/// Both are checked first: fd 3 must be open for reading and fd 4 for
/// writing. Once adopted they get `FD_CLOEXEC`, like every fd std opens, so
/// that the program's own children don't keep the port's pipes open.
///
/// # Errors
///
/// If fd 3 or 4 is not open, not open in the right direction, or has been
/// adopted before.
pub(crate) fn nouse_stdio() -> io::Result<(File, File)> {
    check(COMMAND_FD, libc::O_RDONLY)?;
    check(REPLY_FD, libc::O_WRONLY)?;
    if ADOPTED.swap(true, Ordering::AcqRel) {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "fds 3 and 4 are already owned by a Channel"));
    }
    // SAFETY: `check` just saw both fds open. Nothing else in this process
    // owns them: they are inherited from the port (OTP's `nouse_stdio`
    // contract), std never opens fds 3 and 4 on its own, and `ADOPTED` makes
    // sure this function hands them out once only.
    let (input, output) = unsafe { (OwnedFd::from_raw_fd(COMMAND_FD), OwnedFd::from_raw_fd(REPLY_FD)) };
    fcntl_setfd(&input, FdFlags::CLOEXEC)?;
    fcntl_setfd(&output, FdFlags::CLOEXEC)?;
    Ok((File::from(input), File::from(output)))
}

/// Fails unless `fd` is open for `access` (`O_RDONLY` or `O_WRONLY`; `O_RDWR`
/// fits both).
fn check(fd: RawFd, access: libc::c_int) -> io::Result<()> {
    // SAFETY: `F_GETFL` takes no argument and touches no memory; on an fd
    // that is not open it only fails with `EBADF`.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    let direction = if access == libc::O_RDONLY { "reading" } else { "writing" };
    if flags == -1 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("fd {fd} is not open ({err}): was the port opened with nouse_stdio?"),
        ));
    }
    let mode = flags & libc::O_ACCMODE;
    if mode != access && mode != libc::O_RDWR {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("fd {fd} is not open for {direction}")));
    }
    Ok(())
}
