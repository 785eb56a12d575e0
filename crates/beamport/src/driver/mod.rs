//! Drivers: what is behind a port, under the port core.
//!
//! As in OTP, where the port core runs every port and a driver (spawn, fd, vanilla, or one
//! loaded by the user) says how bytes go out and come in, a beamport port is the core's state
//! machine (owner, links, monitors, close, busy queue, framing, read window) over one
//! [`Driver`]. The driver says how bytes go out ([`Driver::write`]), how they come in
//! ([`Driver::read`]), which fds the reactor or a polling owner watch for it, and how the
//! thing behind it is started, signalled and ended. It never delivers messages itself: the
//! core calls it under the port's lock and turns what it returns into OTP's messages.
//!
//! Today's driver is [`spawn::SpawnDriver`]: a program started through the launcher or by
//! the opening thread itself, talking on one socket. A new kind of port (`{:fd, in, out}`,
//! an in-process driver) is a new variant of [`Drivers`].

use std::io::{self, IoSlice};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::BytesMut;

#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod spawn;

/// How a driver's start went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// The thing behind the port runs now.
    Running,
    /// It was asked for; news of it comes later (the engine's `ChildNews`).
    Pending,
    /// It could not start (errno): the port ends with the error's name, as an exit signal.
    Failed(i32),
}

/// What the port core needs of what is behind a port. Called with the port's lock held.
pub(crate) trait Driver {
    /// Writes what the driver takes now, from the front of `bufs`; `WouldBlock` when it takes
    /// nothing more until its [`io_fd`](Driver::io_fd) is writable.
    fn write(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Reads into `buf`'s spare capacity (appending); `Ok(0)` is the end of input.
    fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize>;
    /// No more output: the thing behind reads the end of its input (half-close).
    fn shutdown_write(&mut self);
    /// No more input is wanted: what the thing behind writes from now on fails, instead of
    /// blocking it while the port flushes its output on the way to closing.
    fn shutdown_read(&mut self);
    /// The fd the reactor, or an owner polling the port, watches for input and for room for
    /// output; `None` for a driver that needs none.
    fn io_fd(&self) -> Option<&Arc<OwnedFd>>;
    /// The port is dead: its I/O ends (an owner still polling it holds the fd until its poll
    /// returns).
    fn close_io(&mut self);
    /// Starts the thing behind the port, `id`'s.
    ///
    /// # Errors
    ///
    /// The start could not even be asked for; the port is not opened.
    fn start(&mut self, id: u64) -> io::Result<Start>;
    /// An fd readable once the thing behind has ended, to be reaped through the engine.
    fn exit_fd(&self) -> Option<&Arc<OwnedFd>>;
    /// News from a start that was [`Start::Pending`]: it runs, as `ns_pid` in the launcher's
    /// namespace and `host_pid` in the host's. If the port was released meanwhile, the driver
    /// ends it (kill ladder).
    fn spawned(&mut self, ns_pid: i32, host_pid: i32);
    /// News from a start that was [`Start::Pending`]: it failed.
    fn spawn_failed(&mut self);
    /// The thing behind ended and was reaped; `group_left`: what it started in its process
    /// group lives on.
    fn exited(&mut self, group_left: bool);
    /// Its OS pid in the host's PID namespace, once known and while it runs.
    fn os_pid(&self) -> Option<i32>;
    /// Its pid as it sees itself (`getpid()`), which differs from [`Driver::os_pid`] inside
    /// the launcher's PID namespace; once known and while it runs.
    fn program_pid(&mut self) -> Option<i32>;
    /// Sends `sig` to it, or to its process group.
    fn signal(&mut self, sig: i32, group: bool);
    /// The port is gone: end what is left behind it (the kill ladder), unless it ended alone.
    fn release(&mut self);
    /// Whether news of the thing behind may still come (a start pending, or it runs): the
    /// port's table keeps a dead port until none can.
    fn expects_news(&self) -> bool;
    /// Bytes the driver holds for the port, besides its own size.
    fn memory(&self) -> usize;
}

/// Every kind of driver, as one type the core holds inline (no allocation, no indirection).
pub(crate) enum Drivers {
    /// `{:spawn, cmd}` and `{:spawn_executable, path}`.
    Spawn(spawn::SpawnDriver),
    /// An in-memory driver for the core's unit tests.
    #[cfg(test)]
    Fake(fake::FakeDriver),
}

macro_rules! each {
    ($self:ident, $d:ident => $e:expr) => {
        match $self {
            Drivers::Spawn($d) => $e,
            #[cfg(test)]
            Drivers::Fake($d) => $e,
        }
    };
}

impl Driver for Drivers {
    fn write(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        each!(self, d => d.write(bufs))
    }
    fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        each!(self, d => d.read(buf))
    }
    fn shutdown_write(&mut self) {
        each!(self, d => d.shutdown_write())
    }
    fn shutdown_read(&mut self) {
        each!(self, d => d.shutdown_read())
    }
    fn io_fd(&self) -> Option<&Arc<OwnedFd>> {
        each!(self, d => d.io_fd())
    }
    fn close_io(&mut self) {
        each!(self, d => d.close_io())
    }
    fn start(&mut self, id: u64) -> io::Result<Start> {
        each!(self, d => d.start(id))
    }
    fn exit_fd(&self) -> Option<&Arc<OwnedFd>> {
        each!(self, d => d.exit_fd())
    }
    fn spawned(&mut self, ns_pid: i32, host_pid: i32) {
        each!(self, d => d.spawned(ns_pid, host_pid))
    }
    fn spawn_failed(&mut self) {
        each!(self, d => d.spawn_failed())
    }
    fn exited(&mut self, group_left: bool) {
        each!(self, d => d.exited(group_left))
    }
    fn os_pid(&self) -> Option<i32> {
        each!(self, d => d.os_pid())
    }
    fn program_pid(&mut self) -> Option<i32> {
        each!(self, d => d.program_pid())
    }
    fn signal(&mut self, sig: i32, group: bool) {
        each!(self, d => d.signal(sig, group))
    }
    fn release(&mut self) {
        each!(self, d => d.release())
    }
    fn expects_news(&self) -> bool {
        each!(self, d => d.expects_news())
    }
    fn memory(&self) -> usize {
        each!(self, d => d.memory())
    }
}
