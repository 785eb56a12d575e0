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

/// Grows a pipe's capacity to `bytes` (best effort; nothing happens on anything but a
/// pipe, or past the system's `pipe-max-size`): a packet that fits passes in one write, and
/// neither side waits for the other in the middle of it.
pub(crate) fn grow_pipe(fd: BorrowedFd<'_>, bytes: usize) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, bytes);
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

/// Opens `path` to be exec'd from its fd (`O_PATH | O_CLOEXEC`): the file it names in this
/// process's view, wherever the exec happens.
pub(crate) fn open_for_exec(path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?)
}

/// `shutdown(fd, SHUT_RD)`: the host stops reading; the child's further writes fail with
/// `EPIPE` instead of blocking once the socket buffer is full (OTP closes its input pipe).
pub(crate) fn shutdown_read(fd: BorrowedFd<'_>) -> io::Result<()> {
    rustix::net::shutdown(fd, rustix::net::Shutdown::Read)?;
    Ok(())
}

/// Closes the host's end of a socket so that the peer reads a clean end of input, as it
/// would from a pipe. A Unix socket closed with data still unread makes the peer's next
/// read fail with `ECONNRESET`; so the host stops reading (`SHUT_RD`: the peer's writes now
/// fail), discards what was queued for it, then lets `fd` go.
pub(crate) fn close_quietly(fd: BorrowedFd<'_>) {
    if shutdown_read(fd).is_err() {
        return;
    }
    let mut scratch = [std::mem::MaybeUninit::<u8>::uninit(); 16 * 1024];
    while let Ok((read, _)) = rustix::io::read(fd, &mut scratch[..]) {
        if read.is_empty() {
            break;
        }
    }
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

/// A non-blocking `eventfd`: a thread blocked in [`poll_port`] on it is woken by
/// [`eventfd_signal`].
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    use rustix::event::EventfdFlags;
    Ok(rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?)
}

/// Adds one to an eventfd's counter, making it readable.
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Resets an eventfd's counter to zero.
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut b = [0u8; 8];
    let _ = rustix::io::read(fd, &mut b);
}

/// What [`poll_port`] saw on a port's socket.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ready {
    /// Data, EOF or an error is there to read.
    pub readable: bool,
    /// The peer shut its side down (or hung up).
    pub closed: bool,
}

/// What [`poll_port`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Polled {
    /// On the socket.
    pub ready: Ready,
    /// The pidfd is readable: the child has exited.
    pub exited: bool,
    /// `wake` was signalled.
    pub woken: bool,
}

impl Polled {
    /// Whether anything at all was seen.
    pub(crate) fn any(&self) -> bool {
        self.ready.readable || self.exited || self.woken
    }
}

/// Waits until a port's socket is readable, its child's pidfd says it exited, or `wake` is
/// signalled, or `timeout` passes (`None` waits for ever); either of the first two may be
/// left out.
pub(crate) fn poll_port(
    sock: Option<BorrowedFd<'_>>,
    pidfd: Option<BorrowedFd<'_>>,
    wake: BorrowedFd<'_>,
    timeout: Option<std::time::Duration>,
) -> io::Result<Polled> {
    use rustix::event::{PollFd, PollFlags};
    let ts = timeout.map(|t| rustix::time::Timespec { tv_sec: t.as_secs() as i64, tv_nsec: t.subsec_nanos() as i64 });
    let mut fds =
        [PollFd::new(&wake, PollFlags::IN), PollFd::new(&wake, PollFlags::IN), PollFd::new(&wake, PollFlags::IN)];
    let mut n = 1;
    let sock_at = sock.as_ref().map(|fd| {
        fds[n] = PollFd::new(fd, PollFlags::IN | PollFlags::RDHUP);
        n += 1;
        n - 1
    });
    let pidfd_at = pidfd.as_ref().map(|fd| {
        fds[n] = PollFd::new(fd, PollFlags::IN);
        n += 1;
        n - 1
    });
    match rustix::event::poll(&mut fds[..n], ts.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    let mut polled = Polled { woken: !fds[0].revents().is_empty(), ..Polled::default() };
    if let Some(i) = sock_at {
        let r = fds[i].revents();
        polled.ready = Ready {
            readable: r.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR),
            closed: r.intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR),
        };
    }
    if let Some(i) = pidfd_at {
        polled.exited = !fds[i].revents().is_empty();
    }
    Ok(polled)
}

/// A non-blocking monotonic `timerfd`, disarmed.
pub(crate) fn timer() -> io::Result<OwnedFd> {
    use rustix::time::{TimerfdClockId, TimerfdFlags};
    Ok(rustix::time::timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK)?)
}

/// Arms `timer` to fire once, `after` from now.
pub(crate) fn timer_arm(timer: BorrowedFd<'_>, after: std::time::Duration) -> io::Result<()> {
    use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec};
    let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
    // A zero value would disarm it.
    let value = Timespec { tv_sec: after.as_secs() as i64, tv_nsec: after.subsec_nanos().max(1) as i64 };
    rustix::time::timerfd_settime(
        timer,
        TimerfdTimerFlags::empty(),
        &Itimerspec { it_interval: zero, it_value: value },
    )?;
    Ok(())
}

/// Whether `fd` is a socket.
pub(crate) fn is_socket(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd)
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket)
}

/// A close-on-exec duplicate of `fd`.
pub(crate) fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 0)?)
}

/// Whether `fd` has input now (or EOF, or an error), without waiting.
pub(crate) fn readable_now(fd: BorrowedFd<'_>) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    matches!(rustix::event::poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(n) if n > 0)
}

/// `recv(fd, buf, MSG_DONTWAIT)` on a socket: `Ok(None)` if nothing is there yet, else what
/// came (`Some(0)` at the end of input). The fd's own blocking mode is left alone.
pub(crate) fn recv_now(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match rustix::net::recv(fd, buf, rustix::net::RecvFlags::DONTWAIT) {
        Ok((n, _)) => Ok(Some(n)),
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Blocks until `fd` has data or EOF. A thread blocked in `poll` is woken only by the events
/// it asked for; one blocked in `read` on a Unix socket is also woken each time the peer
/// frees space this side wrote (the socket has one wait queue for both directions).
pub(crate) fn wait_readable(fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags};
    loop {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
