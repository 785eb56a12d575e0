//! Unix-socket messages with file descriptors attached (`SCM_RIGHTS`), and pid translation
//! between PID namespaces.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Sends all of `bytes` on a blocking stream socket, with `fd` attached to the first byte.
pub(crate) fn send_all(sock: BorrowedFd<'_>, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let mut sent = 0;
    if let Some(fd) = fd {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = SendAncillaryBuffer::new(&mut space);
        let fds = [fd];
        anc.push(SendAncillaryMessage::ScmRights(&fds));
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
/// and received fds to `fds`. Returns the number of bytes read; 0 means EOF.
pub(crate) fn recv_some(
    sock: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    fds: &mut VecDeque<OwnedFd>,
    dontwait: bool,
) -> io::Result<usize> {
    let mut chunk = [0u8; 65536];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
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
    for m in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(r) = m {
            fds.extend(r);
        }
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// The pid of process `pid` (as this process sees it) in the PID namespace of the mounted
/// `/proc`, read from a pidfd's fdinfo. A launcher inside its own PID namespace uses this to
/// tell the host the pid the host sees.
pub(crate) fn procfs_pid(pid: i32) -> io::Result<i32> {
    let p = rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())?;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", super::fd::raw(&fd)))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:").and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| io::Error::other("no Pid in pidfd fdinfo"))
}

