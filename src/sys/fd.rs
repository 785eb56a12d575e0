//! File descriptors: socket pairs, non-blocking mode, limits, vectored writes.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`: one end for the host, one for the child.
///
/// One bidirectional socket replaces OTP's two pipes, so a port costs one fd in the host.
pub(crate) fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?)
}

/// Sets or clears `O_NONBLOCK` on the file description behind `fd`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let mut flags = rustix::fs::fcntl_getfl(fd)?;
    flags.set(rustix::fs::OFlags::NONBLOCK, on);
    rustix::fs::fcntl_setfl(fd, flags)?;
    Ok(())
}

/// Grows the socket's send buffer (best effort): fewer wake-ups on bulk transfers. A Unix
/// stream socket's sender is limited by its own `SO_SNDBUF`; its peer's receive buffer plays
/// no part, so that one is left alone.
pub(crate) fn set_send_buffer(fd: BorrowedFd<'_>, bytes: usize) {
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(fd, bytes);
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as the Erlang VM does at start.
/// Returns the limit now in force.
pub(crate) fn raise_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// `access(path, X_OK)`: OTP's pre-check for `spawn_executable`.
pub(crate) fn check_executable(path: &Path) -> io::Result<()> {
    rustix::fs::access(path, rustix::fs::Access::EXEC_OK)?;
    Ok(())
}

/// `shutdown(fd, SHUT_RD)`: the host stops reading; the child's further writes fail with
/// `EPIPE` instead of blocking once the socket buffer is full (OTP closes its input pipe).
pub(crate) fn shutdown_read(fd: BorrowedFd<'_>) -> io::Result<()> {
    rustix::net::shutdown(fd, rustix::net::Shutdown::Read)?;
    Ok(())
}

/// `shutdown(fd, SHUT_WR)`: the child reads EOF on its stdin, its output still flows.
pub(crate) fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    rustix::net::shutdown(fd, rustix::net::Shutdown::Write)?;
    Ok(())
}

/// `read(fd, buf)` into uninitialised spare capacity; returns the number of bytes read.
pub(crate) fn read_into(fd: BorrowedFd<'_>, buf: &mut bytes::BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let (init, _) = rustix::io::read(fd, spare)?;
    let n = init.len();
    // SAFETY: `read` initialised exactly `n` bytes at the start of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// `sendmsg(fd, bufs, MSG_NOSIGNAL)`: a vectored write that reports `EPIPE` instead of
/// raising `SIGPIPE`, whatever the host's signal setup.
pub(crate) fn send_vectored(fd: BorrowedFd<'_>, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let mut anc = rustix::net::SendAncillaryBuffer::default();
    Ok(rustix::net::sendmsg(fd, bufs, &mut anc, rustix::net::SendFlags::NOSIGNAL)?)
}
