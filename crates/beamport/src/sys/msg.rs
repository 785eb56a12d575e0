//! Unix-socket messages with file descriptors attached (`SCM_RIGHTS`), and pid translation
//! between PID namespaces.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};

/// Sends all of `bytes` on a blocking stream socket, with `fd` attached to the first byte.
pub(crate) fn send_all(sock: BorrowedFd<'_>, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    send_all_as(sock, bytes, fd.as_slice(), None)
}

/// Sends all of `bytes` on a blocking stream socket, with `fds` (at most two) attached to the
/// first byte.
pub(crate) fn send_fds(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    send_all_as(sock, bytes, fds, None)
}

/// Like [`send_all`], and with `as_pid` the message carries `SCM_CREDENTIALS` naming that
/// process: the kernel translates the pid into the receiver's PID namespace, so a launcher
/// inside its own namespace tells the host the pid the host sees at no cost. Naming another
/// process needs `CAP_SYS_ADMIN` in the user namespace that owns the sender's PID namespace,
/// which a namespace's PID 1 started by the host has.
pub(crate) fn send_all_as(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    as_pid: Option<i32>,
) -> io::Result<()> {
    let mut sent = 0;
    if !fds.is_empty() || as_pid.is_some() {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2), ScmCredentials(1))];
        let mut anc = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !anc.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if let Some(pid) = as_pid.and_then(rustix::process::Pid::from_raw) {
            anc.push(SendAncillaryMessage::ScmCredentials(rustix::net::UCred {
                pid,
                uid: rustix::process::getuid(),
                gid: rustix::process::getgid(),
            }));
        }
        sent = loop {
            match sendmsg(sock, &[IoSlice::new(bytes)], &mut anc, SendFlags::NOSIGNAL) {
                Ok(n) => break n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
    }
    while sent < bytes.len() {
        match rustix::net::send(sock, &bytes[sent..], SendFlags::NOSIGNAL) {
            Ok(n) => sent += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receives what is available (without blocking when `dontwait`), appending bytes to `buf`
/// and received fds to `fds`. Returns the number of bytes read (0 means EOF) and, on a socket
/// with `SO_PASSCRED`, the sender's pid as the receiver sees it. Linux never returns bytes
/// sent with different credentials in one call.
pub(crate) fn recv_some(
    sock: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    fds: &mut VecDeque<OwnedFd>,
    dontwait: bool,
) -> io::Result<(usize, Option<i32>)> {
    let mut chunk = [0u8; 65536];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8), ScmCredentials(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if dontwait {
        flags |= RecvFlags::DONTWAIT;
    }
    let n = loop {
        match recvmsg(sock, &mut [IoSliceMut::new(&mut chunk)], &mut anc, flags) {
            Ok(r) => break r.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut pid = None;
    for m in anc.drain() {
        match m {
            RecvAncillaryMessage::ScmRights(r) => fds.extend(r),
            RecvAncillaryMessage::ScmCredentials(c) => pid = Some(c.pid.as_raw_nonzero().get()),
            _ => {}
        }
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok((n, pid))
}

/// Asks the kernel to attach the sender's credentials to every message `sock` receives.
pub(crate) fn pass_credentials(sock: BorrowedFd<'_>) -> io::Result<()> {
    rustix::net::sockopt::set_socket_passcred(sock, true)?;
    Ok(())
}
