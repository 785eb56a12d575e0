//! Why opening a port, or a call on one, failed: typed errors with OTP's atoms.

use std::io;
use std::path::PathBuf;

use crate::framing::FrameError;
use crate::message::Reason;

/// Why a port could not be opened. [`OpenError::otp_name`] gives the atom `open_port/2`
/// raises for the same fault.
///
/// # Examples
///
/// ```
/// use beamport::{Name, OpenError, Opt, Port};
/// let e = Port::open(Name::spawn(""), []).unwrap_err();
/// assert!(matches!(e, OpenError::Badarg { .. }));
/// let e = Port::open(Name::spawn("cat"), [Opt::args(["-u"])]).unwrap_err(); // executables only
/// assert!(matches!(e, OpenError::Badarg { .. }));
/// let e = Port::open(Name::executable("/nonexistent/prog"), []).unwrap_err();
/// assert!(matches!(&e, OpenError::Enoent { path } if path.ends_with("prog")));
/// let e = Port::open(Name::executable("/etc/passwd"), []).unwrap_err(); // not executable
/// assert!(matches!(e, OpenError::Eacces { .. }));
/// assert_eq!(e.to_string(), "eacces: /etc/passwd: permission denied");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// `badarg`: a malformed name or option, or a forbidden combination.
    #[error("badarg: {what}")]
    Badarg {
        /// What was wrong.
        what: String,
    },
    /// `enoent`: the executable does not exist.
    #[error("enoent: {}: no such file", path.display())]
    Enoent {
        /// The path given.
        path: PathBuf,
    },
    /// `eacces`: the file is not executable.
    #[error("eacces: {}: permission denied", path.display())]
    Eacces {
        /// The path given.
        path: PathBuf,
    },
    /// A resource error from the OS: `emfile`, `enfile`, `eagain`, `enomem`…
    #[error("{name}: {source}")]
    System {
        /// OTP's atom for it.
        name: &'static str,
        /// The error behind it.
        source: io::Error,
    },
    /// The calling process is dead.
    #[error("the calling process has exited ({0:?})")]
    Exited(Reason),
}

impl OpenError {
    /// OTP's atom for this error: `badarg`, `enoent`, `eacces`, `emfile`…
    ///
    /// ```
    /// use beamport::{Name, Port};
    /// let e = Port::open(Name::executable("/nonexistent/prog"), []).unwrap_err();
    /// assert_eq!(e.otp_name(), "enoent");
    /// ```
    pub fn otp_name(&self) -> &'static str {
        match self {
            OpenError::Badarg { .. } => "badarg",
            OpenError::Enoent { .. } => "enoent",
            OpenError::Eacces { .. } => "eacces",
            OpenError::System { name, .. } => name,
            OpenError::Exited(_) => "noproc",
        }
    }

    pub(super) fn system(e: io::Error) -> OpenError {
        OpenError::System { name: errno_name(&e), source: e }
    }
}

/// OTP's atom for an OS error.
pub(crate) fn errno_name(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EMFILE) => "emfile",
        Some(libc::ENFILE) => "enfile",
        Some(libc::EAGAIN) => "eagain",
        Some(libc::ENOMEM) => "enomem",
        Some(libc::ENOENT) => "enoent",
        Some(libc::EACCES) => "eacces",
        Some(libc::EPIPE) => "epipe",
        Some(libc::EBADF) => "ebadf",
        Some(libc::EINVAL) => "einval",
        Some(libc::ENAMETOOLONG) => "enametoolong",
        Some(libc::E2BIG) => "e2big",
        _ => "eio",
    }
}

/// Why a function-API call on a port failed.
///
/// # Examples
///
/// ```
/// use beamport::{CommandFlags, Name, Opt, Port, PortError};
/// let port = Port::open(Name::spawn("cat"), [Opt::Packet(1)]).unwrap();
/// let e = port.command(vec![0; 256]).unwrap_err(); // a 1-byte header holds at most 255
/// assert!(matches!(e, PortError::PacketTooLarge(_)));
/// assert!(port.is_open()); // refused, not fatal
/// let force = CommandFlags { force: true, ..Default::default() };
/// assert!(matches!(port.command_with("x", force), Err(PortError::NotSup)));
/// port.close().unwrap();
/// assert!(matches!(port.command("x"), Err(PortError::Closed(_))));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// `badarg`: the port is closed (or closing).
    #[error("badarg: {0} is closed")]
    Closed(String),
    /// The command does not fit the packet header. OTP would accept it and then kill the port
    /// with `einval`; beamport refuses it and the port stays open.
    #[error("badarg: {0}")]
    PacketTooLarge(#[from] FrameError),
    /// `notsup`: `force` on a spawn port (OTP gives the same).
    #[error("notsup: :force is not supported by spawn ports")]
    NotSup,
    /// `badarg` for another reason (for example connecting to a dead process).
    #[error("badarg: {0}")]
    Badarg(String),
    /// The port's input was already closed with [`Port::close_input`](crate::Port::close_input).
    #[error("badarg: the input of {0} is closed")]
    InputClosed(String),
}
