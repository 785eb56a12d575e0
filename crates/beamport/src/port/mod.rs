//! Ports: external programs as message-passing peers, with OTP's semantics.
//!
//! [`Port::open`] starts a program and makes the calling process its owner, linked to it.
//! The owner then talks to the port through the *message API* ([`Port::send`] with a
//! [`Request`], Elixir's `send port, {pid, ...}`) or the *function API* ([`Port::command`],
//! [`Port::close`], [`Port::connect`], [`Port::info`]). The port sends the owner
//! `{port, {:data, d}}`, `{port, :closed}`, `{port, :connected}`, `{port, {:exit_status, n}}`,
//! `{port, :eof}`, and exit signals, in OTP's order.
//!
//! ```
//! use beamport::{process, Name, Opt, Port, Request};
//! let me = process::current();
//! let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
//! port.send(me.pid(), Request::command("hello"));
//! let msg = me.receive().unwrap();
//! assert_eq!(format!("{msg:?}"), format!("{{{port:?}, {{:data, \"hello\"}}}}"));
//! port.send(me.pid(), Request::Close);
//! assert_eq!(format!("{:?}", me.receive().unwrap()), format!("{{{port:?}, :closed}}"));
//! ```
//!
//! # The core and its driver
//!
//! This module is the port core: OTP's state machine, written once for every kind of port.
//! What is behind a port is its driver ([`crate::driver`]), which the core calls under the
//! port's lock. The core's state is in a few named parts (`state.rs`): its life (owner,
//! links, monitors), its output (queue, busy limits, half-close), its input (framing, the
//! read window), how its fds are watched, and what it knows of the thing behind it.
//!
//! A port is `Open`, then `Closing` (exit signals sent, output still flushing), then `Dead`.
//! `begin_close` and `finish` (in `life.rs`) are the only functions that move it along,
//! whatever the cause: a close, an owner's death, EOF, a write error or an exit signal.
//!
//! Files: `life.rs` (the message API, closing, connect, links, monitors, exit signals),
//! `open.rs` (`Port::open`), `behind.rs` (the thing behind the port: its start, exit,
//! signals), `output.rs` (commands, the output queue, busy limits), `input.rs` (reads,
//! framing, EOF, the read window), `lending.rs` (owner-polled replies), `options.rs`,
//! `info.rs`, `error.rs`.

mod behind;
mod error;
mod info;
mod input;
mod lending;
mod life;
mod open;
mod options;
mod output;
mod state;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, MutexGuard, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

pub(crate) use self::error::errno_name;
pub use self::error::{OpenError, PortError};
pub use self::info::{Item, ItemValue, PortInfo};
pub use self::open::find_executable;
pub(crate) use self::options::Settings;
pub use self::options::{Name, Opt, DEFAULT_GRACE, DEFAULT_PACKET_SIZE, DEFAULT_READ_WINDOW, DEFAULT_SPIN_WAIT};
use self::state::{Inner, Phase, State};
use crate::driver::Driver;
use crate::engine::{self, ChildNews, Engine, Ready};
use crate::message::{Id, Message, Pid, Port, PortMsg, PortPeer, Reason, Ref};
use crate::process;

/// A message-API request: the second element of `{pid, request}` sent to a port.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Name, Opt, Port, Request};
/// let me = process::current();
/// let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
/// port.send(me.pid(), Request::Command("hi".into())); // {self(), {:command, "hi"}}
/// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("data");
/// assert_eq!(msg.data().unwrap().as_str(), Some("hi"));
/// port.send(me.pid(), Request::Connect(me.pid())); // {self(), {:connect, self()}}
/// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect(":connected");
/// assert_eq!(format!("{msg:?}"), format!("{{{port:?}, :connected}}"));
/// port.send(me.pid(), Request::Close); // {self(), :close}
/// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect(":closed");
/// assert_eq!(format!("{msg:?}"), format!("{{{port:?}, :closed}}"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `{:command, data}`.
    Command(Bytes),
    /// `:close`.
    Close,
    /// `{:connect, new_owner}`.
    Connect(Pid),
}

impl Request {
    /// `{:command, data}` from anything that converts into [`Bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::Request;
    /// assert_eq!(Request::command("hi"), Request::Command("hi".into()));
    /// assert_eq!(Request::command(vec![104, 105]), Request::command(String::from("hi")));
    /// ```
    pub fn command(data: impl Into<Bytes>) -> Request {
        Request::Command(data.into())
    }
}

/// Flags of [`Port::command_with`] (`Port.command/3`).
///
/// # Examples
///
/// ```
/// use beamport::{CommandFlags, Name, Port, PortError};
/// let port = Port::open(Name::spawn("cat > /dev/null"), []).unwrap();
/// let nosuspend = CommandFlags { nosuspend: true, ..CommandFlags::default() };
/// assert_eq!(port.command_with("data", nosuspend).unwrap(), true); // not busy: sent
/// let force = CommandFlags { force: true, ..CommandFlags::default() };
/// assert!(matches!(port.command_with("data", force), Err(PortError::NotSup)));
/// port.close().unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandFlags {
    /// `:nosuspend`: return `Ok(false)` instead of waiting when the port is busy.
    pub nosuspend: bool,
    /// `:force`: not supported by spawn ports (`notsup`), as in OTP.
    pub force: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Every port from its open until it is dead and no news of what was behind it can come
/// (a closed port still learns its program's exit status).
static TABLE: LazyLock<RwLock<HashMap<u64, Port>>> = LazyLock::new(Default::default);

fn lookup(id: u64) -> Option<Port> {
    TABLE.read().expect("port table").get(&id).cloned()
}

/// The engine's events, by port id, to the ports in [`TABLE`].
struct Events;

impl engine::Dispatch for Events {
    fn io_ready(&self, id: u64, ready: Ready, buf: &mut BytesMut) {
        if let Some(p) = lookup(id) {
            if ready.writable {
                p.on_writable();
            }
            if ready.readable {
                p.on_readable(buf);
            }
        }
    }

    fn lend_expired(&self, id: u64) {
        if let (Some(p), Some(e)) = (lookup(id), engine::started()) {
            p.take_back(e);
        }
    }

    fn child(&self, id: u64, news: ChildNews) {
        if let Some(p) = lookup(id) {
            p.on_child_news(news);
        }
    }
}

/// The engine, started on first use with this layer's table as where its events go.
pub(crate) fn engine() -> io::Result<&'static Engine> {
    engine::get(&Events)
}

/// Effects decided under the port's lock and carried out after it is released: exit
/// signals can end processes, which can close other ports. (The port's own messages —
/// data, `exit_status`, `eof` — are delivered under the lock instead: two threads may read a
/// port, the reactor and an owner polling it, and only the lock keeps their messages in order.)
#[derive(Default)]
#[must_use]
struct After {
    signals: Vec<(Pid, Reason, bool)>,
    downs: Vec<(Ref, Pid, Reason)>,
    /// `{port, :closed}` for this pid: sent after the exit signals, OTP's order
    /// (docs/otp-semantics.md#close-ordering).
    closed: Option<Pid>,
}

impl After {
    fn merge(&mut self, other: After) {
        self.signals.extend(other.signals);
        self.downs.extend(other.downs);
        if other.closed.is_some() {
            self.closed = other.closed;
        }
    }

    fn run(self, port: &Port) {
        for (pid, reason, link) in self.signals {
            process::exit_signal(Id::Port(port.clone()), pid, reason, link);
        }
        for (r, pid, reason) in self.downs {
            process::deliver(pid, Message::Down(r, Id::Port(port.clone()), reason));
        }
        if let Some(to) = self.closed {
            process::deliver(to, Message::Port(port.clone(), PortMsg::Closed));
        }
    }
}

impl Port {
    /// The core behind the handle (every port is the core's: only this layer makes them).
    fn inner(&self) -> &Inner {
        self.0.as_any().downcast_ref::<Inner>().expect("a port made by the port core")
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner().state.lock().expect("port state")
    }

    fn label(&self) -> String {
        format!("{self:?}")
    }

    /// Waits on the port's condvar (for the driver's start, or for the port not to be busy).
    fn cv_wait<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.cv_waiters += 1;
        let mut st = self.inner().cv.wait(st).expect("port state");
        st.cv_waiters -= 1;
        st
    }

    /// Wakes the threads in [`Port::cv_wait`], if any (a `notify_all` is a syscall even for
    /// none).
    fn cv_wake(&self, st: &State) {
        if st.cv_waiters > 0 {
            self.inner().cv.notify_all();
        }
    }

    /// The port is dead and no news of what was behind it can come: it leaves the table.
    fn forget_if_done(&self, st: &State) {
        if st.phase == Phase::Dead && !st.driver.expects_news() {
            TABLE.write().expect("port table").remove(&self.inner().id);
        }
    }

    /// The port's number, as in `#Port<0.N>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{Name, Port};
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// assert_eq!(format!("{port:?}"), format!("#Port<0.{}>", port.id()));
    /// port.close().unwrap();
    /// ```
    pub fn id(&self) -> u64 {
        self.inner().id
    }

    /// Every open port (`Port.list/0`).
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{Name, Port};
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// assert!(Port::list().contains(&port));
    /// port.close().unwrap();
    /// assert!(!Port::list().contains(&port));
    /// ```
    pub fn list() -> Vec<Port> {
        let all: Vec<Port> = TABLE.read().expect("port table").values().cloned().collect();
        // Outside the table's lock: a port's lock comes first (see `forget_if_done`).
        let mut v: Vec<Port> = all.into_iter().filter(|p| p.lock().phase != Phase::Dead).collect();
        v.sort_by_key(Port::id);
        v
    }

    /// Whether the port is open (not closing or closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{Name, Port};
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// assert!(port.is_open());
    /// port.close().unwrap();
    /// assert!(!port.is_open());
    /// ```
    pub fn is_open(&self) -> bool {
        self.lock().phase == Phase::Open
    }
}

impl PortPeer for Inner {
    fn id(&self) -> u64 {
        self.id
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    fn data_taken(&self, n: usize) {
        self.input_taken(n);
    }

    fn add_link(&self, pid: Pid) -> bool {
        let mut st = self.state.lock().expect("port state");
        if st.phase != Phase::Open {
            return false;
        }
        if !st.life.links.contains(&pid) {
            st.life.links.push(pid);
        }
        true
    }

    fn remove_link(&self, pid: Pid) {
        self.state.lock().expect("port state").life.links.retain(|p| *p != pid);
    }

    fn add_monitor(&self, r: Ref, by: Pid) -> bool {
        let mut st = self.state.lock().expect("port state");
        if st.phase != Phase::Open {
            return false;
        }
        st.life.monitors.push((r, by));
        true
    }

    fn remove_monitor(&self, r: Ref) {
        self.state.lock().expect("port state").life.monitors.retain(|(x, _)| *x != r);
    }

    fn exit_signal(&self, port: &Port, from: Pid, reason: Reason, link: bool) {
        port.exit_signal(from, reason, link);
    }

    fn owner_exited(&self, port: &Port, owner: Pid, reason: &Reason) {
        port.owner_exited(owner, reason);
    }

    fn poll_for_owner(
        &self,
        port: &Port,
        me: Pid,
        wake: BorrowedFd<'_>,
        timeout: Option<Duration>,
        stop_polling: &mut dyn FnMut(),
    ) -> bool {
        port.poll_for_owner(me, wake, timeout, stop_polling)
    }
}
