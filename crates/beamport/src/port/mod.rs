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
//! # Every state change in one place
//!
//! A port is `Open`, then `Closing` (exit signals sent, output still flushing), then `Dead`.
//! [`Port`]'s private `begin_close` and `finish` are the only functions that move it along,
//! whatever the cause: a close, an owner's death, EOF, a write error or an exit signal.

mod direct;
mod error;
mod info;
mod input;
mod options;
mod output;
mod spawn;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, RwLock};

use bytes::{Bytes, BytesMut};

pub(crate) use self::direct::{direct_candidate, forget_direct};
use self::direct::{mark_lent, set_direct};
pub(crate) use self::error::errno_name;
pub use self::error::{OpenError, PortError};
pub use self::info::{Item, ItemValue, PortInfo};
pub(crate) use self::options::Settings;
pub use self::options::{Name, Opt, DEFAULT_GRACE, DEFAULT_PACKET_SIZE, DEFAULT_READ_WINDOW, DEFAULT_SPIN_WAIT};
pub use self::spawn::find_executable;
use crate::engine;
use crate::framing::Decoder;
use crate::message::{ExitStatus, Id, Message, PortMsg, Reason, Ref};
use crate::process::{self, Pid};
use crate::sys;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Opening,
    Open,
    Closing,
    Dead,
}

struct State {
    phase: Phase,
    owner: Pid,
    links: Vec<Pid>,
    monitors: Vec<(Ref, Pid)>,
    input: u64,
    output: u64,
    queue: VecDeque<Bytes>,
    queued: usize,
    busy: bool,
    decoder: Decoder,
    rbuf: BytesMut,
    /// The host's end of the socket; shared with an owner thread polling it (see
    /// [`Port::wait_direct`]), which keeps it open until its poll returns.
    fd: Option<Arc<OwnedFd>>,
    read_eof: bool,
    input_done: bool,
    exit: Option<i32>,
    close_input: bool,
    input_closed: bool,
    reply_closed: Option<Pid>,
    busy_wakers: Vec<std::task::Waker>,
    /// Writability events are on (output is queued).
    write_armed: bool,
    /// The program exited and members of its process group live on.
    group_left: bool,
    /// The socket is registered with the engine.
    registered: bool,
    /// The launcher has answered the spawn request (with a pid or an error).
    spawned: bool,
    /// Signals asked for before the launcher's answer, sent once the pid is known.
    early_signals: Vec<(i32, bool)>,
    /// A process's thread polls the socket itself (the reactor does not watch it meanwhile).
    direct: Option<Pid>,
    /// The socket is lent to the owner's thread: out of the reactor until the owner stops
    /// polling it for [`engine::LEND_FOR`].
    lent: bool,
    /// The host forked the program itself (`Engine::spawn_direct`), not the launcher: where
    /// the program stores its pid in the launcher's namespace (`sys::child::ns_pid`).
    forked_here: Option<Arc<AtomicI32>>,
    /// The owner commanded since it last polled the port: a reply is likely soon, and worth
    /// spinning for before sleeping (a program just started, or one that talks unasked, is not).
    replying: bool,
    /// That program's pidfd until it is reaped.
    pidfd: Option<Arc<OwnedFd>>,
    /// Threads waiting on the port's condvar.
    cv_waiters: u32,
    /// The reactor watches the pidfd (it does unless the port is lent).
    pidfd_watched: bool,
}

pub(crate) struct Inner {
    id: u64,
    name: Box<str>,
    settings: Settings,
    state: Mutex<State>,
    cv: Condvar,
    unread: AtomicUsize,
    /// Reading stopped at a full read window; the owner's taking messages restarts it. Outside
    /// the state lock so that taking a message never needs the port's lock.
    read_paused: AtomicBool,
    os_pid: AtomicI32,
    child_pid: AtomicI32,
}

/// A port: `#Port<0.N>`. Cheap to clone; equal when it names the same port. Like an Erlang
/// port identifier it stays valid after the port closes, and calls then fail with
/// [`PortError::Closed`] (or return `None`).
///
/// # Examples
///
/// ```
/// use beamport::{Name, Port, PortError};
/// let port = Port::open(Name::spawn("cat"), []).unwrap();
/// let same = port.clone();
/// assert_eq!(same, port);
/// assert!(format!("{port:?}").starts_with("#Port<0."));
/// let other = Port::open(Name::spawn("cat"), []).unwrap();
/// assert_ne!(other, port);
/// other.close().unwrap();
/// port.close().unwrap();
/// assert!(matches!(same.command("late"), Err(PortError::Closed(_))));
/// assert_eq!(same.info(), None);
/// ```
#[derive(Clone)]
pub struct Port(Arc<Inner>);

impl PartialEq for Port {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for Port {}
impl Hash for Port {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state)
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Port<0.{}>", self.0.id)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static PORTS: LazyLock<RwLock<HashMap<u64, Port>>> = LazyLock::new(Default::default);

/// Effects decided under the port's lock and carried out after it is released: exit
/// signals can end processes, which can close other ports. (The port's own messages —
/// data, `exit_status`, `eof` — are delivered under the lock instead: two threads may read a
/// port, the reactor and an owner polling it, and only the lock keeps their messages in order.)
#[derive(Default)]
#[must_use]
struct After {
    signals: Vec<(Pid, Reason, bool)>,
    downs: Vec<(Ref, Pid, Reason)>,
    /// `{port, :closed}` for this pid: sent after the exit signals, OTP's order (E3, E12).
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

pub(crate) fn lookup(id: u64) -> Option<Port> {
    PORTS.read().expect("port table").get(&id).cloned()
}

/// Ports owned by a process that just ended close, with its reason, even if it had
/// unlinked itself (OTP would leak them, E23).
pub(crate) fn owner_gone(pid: Pid, reason: &Reason) {
    // Lock order is a port's state, then PORTS (`finish`): never lock a port under PORTS.
    let all: Vec<Port> = PORTS.read().expect("port table").values().cloned().collect();
    for p in all {
        let after = {
            let mut st = p.lock();
            if st.owner == pid && st.phase == Phase::Open {
                p.begin_close(&mut st, reason.clone(), true, None)
            } else {
                After::default()
            }
        };
        after.run(&p);
    }
}

impl Port {
    /// Undoes a port that never started: no program, no messages, no signals.
    /// The program's pid as the launcher sees it, or -1 if it has none (yet, or any more). A
    /// program forked here learns it itself, after `Port::open` has returned, and caches it.
    fn child_ns_pid(&self, st: &State) -> i32 {
        let pid = self.0.child_pid.load(Ordering::Relaxed);
        if pid > 0 {
            return pid;
        }
        let Some(announce) = &st.forked_here else { return pid };
        let pidfd = st.pidfd.as_ref().map(|p| p.as_fd());
        let pid = sys::child::ns_pid(announce, pidfd).unwrap_or(-1);
        self.0.child_pid.store(pid, Ordering::Relaxed);
        pid
    }

    fn abandon(&self, st: &mut State) {
        st.phase = Phase::Dead;
        st.spawned = true;
        st.links.clear();
        drop(st.fd.take());
        PORTS.write().expect("port table").remove(&self.0.id);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().expect("port state")
    }

    fn label(&self) -> String {
        format!("{self:?}")
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
        self.0.id
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
        let mut v: Vec<Port> = PORTS.read().expect("port table").values().cloned().collect();
        v.sort_by_key(|p| p.0.id);
        v
    }

    /// The program's OS pid (in the host's PID namespace), while the port is open.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{Name, Port};
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// let pid = port.os_pid().unwrap();
    /// assert!(pid > 0);
    /// port.close().unwrap();
    /// assert_eq!(port.os_pid(), None);
    /// ```
    pub fn os_pid(&self) -> Option<i32> {
        let st = self.spawned();
        let p = self.0.os_pid.load(Ordering::Relaxed);
        (p > 0 && st.phase != Phase::Dead).then_some(p)
    }

    /// The state, once the launcher has answered the spawn request (at once if the port is
    /// closed: a closed port has no pid to wait for).
    fn spawned(&self) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        while !st.spawned && st.phase != Phase::Dead {
            st = self.cv_wait(st);
        }
        st
    }

    /// Waits on the port's condvar (for the launcher's answer, or for the port not to be busy).
    fn cv_wait<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.cv_waiters += 1;
        let mut st = self.0.cv.wait(st).expect("port state");
        st.cv_waiters -= 1;
        st
    }

    /// Wakes the threads in [`Port::cv_wait`], if any (a `notify_all` is a syscall even for
    /// none).
    fn cv_wake(&self, st: &State) {
        if st.cv_waiters > 0 {
            self.0.cv.notify_all();
        }
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

    /// The message API: what `send port, {from, request}` does in Elixir. It never fails,
    /// like `send`: a request to a closed port is dropped; a request whose `from` is not the
    /// owner sends the exit signal `:badsig` to the owner and leaves the port open (OTP 25).
    /// A command that is too large for its packet header ends the port with `:einval`, as in
    /// OTP (the function API refuses it instead). While the port is busy, the calling thread
    /// waits, as a sending process is suspended on the BEAM.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Message, Name, Opt, Port, Request};
    /// let me = process::current();
    /// let wait = Duration::from_secs(5);
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    /// port.send(me.pid(), Request::command("hello")); // send port, {self(), {:command, "hello"}}
    /// let msg = me.receive_timeout(wait).unwrap().expect("data");
    /// assert_eq!(msg.data().unwrap().as_str(), Some("hello"));
    ///
    /// // {self(), {:connect, new}}: `new` owns the port, the old owner gets :connected.
    /// let (parent, p) = (me.pid(), port.clone());
    /// let new = process::spawn(move |new| {
    ///     let _go = new.receive(); // wait until the port is ours
    ///     p.send(new.pid(), Request::Close); // {self(), :close}
    ///     let closed = new.receive_timeout(Duration::from_secs(5)).unwrap().expect(":closed");
    ///     process::send(parent, format!("{closed:?}"));
    /// });
    /// port.send(me.pid(), Request::Connect(new));
    /// let msg = me.receive_timeout(wait).unwrap().expect(":connected");
    /// assert_eq!(format!("{msg:?}"), format!("{{{port:?}, :connected}}"));
    /// process::send(new, "go");
    /// let Some(Message::User(reply)) = me.receive_timeout(wait).unwrap() else { panic!() };
    /// assert_eq!(reply.downcast::<String>().unwrap(), format!("{{{port:?}, :closed}}"));
    /// assert!(!port.is_open());
    /// ```
    pub fn send(&self, from: Pid, request: Request) {
        let after = {
            let mut st = self.lock();
            if st.phase != Phase::Open {
                return;
            }
            if from != st.owner {
                let mut a = After::default();
                a.signals.push((st.owner, Reason::atom("badsig"), false));
                a
            } else {
                match request {
                    Request::Command(data) => {
                        st = self.wait_not_busy(st);
                        if st.phase != Phase::Open || st.input_closed || st.close_input {
                            return;
                        }
                        if process::current_pid() == from {
                            self.lend_for_reply(&mut st);
                        }
                        match self.write(&mut st, data) {
                            Ok(()) => After::default(),
                            Err(reason) => self.begin_close(&mut st, reason, false, None),
                        }
                    }
                    Request::Close => {
                        let owner = st.owner;
                        self.begin_close(&mut st, Reason::Normal, true, Some(owner))
                    }
                    Request::Connect(new) => {
                        st.owner = new;
                        process::deliver(from, Message::Port(self.clone(), PortMsg::Connected));
                        After::default()
                    }
                }
            }
        };
        after.run(self);
    }

    /// Starts closing: exit signals and `Down`s go out now; the output queue is flushed
    /// (unless `flush` is false); then [`Port::finish`] ends the port.
    fn begin_close(&self, st: &mut State, reason: Reason, flush: bool, reply: Option<Pid>) -> After {
        if st.phase != Phase::Open {
            return After::default();
        }
        st.phase = Phase::Closing;
        st.reply_closed = reply;
        if let Some(w) = st.direct {
            process::wake_polling(w); // it hands the socket back for the flush
        }
        let mut after = After::default();
        for pid in std::mem::take(&mut st.links) {
            after.signals.push((pid, reason.clone(), true));
        }
        for (r, pid) in std::mem::take(&mut st.monitors) {
            after.downs.push((r, pid, reason.clone()));
        }
        if !flush {
            st.queue.clear();
            st.queued = 0;
        }
        if st.queue.is_empty() {
            after.closed = st.reply_closed.take();
            self.finish(st);
        } else if let Some(fd) = st.fd.as_ref() {
            // Input stops now (E24): the program's writes fail instead of blocking the flush.
            let _ = sys::fd::shutdown_read(fd.as_fd());
        }
        self.cv_wake(st);
        st.busy_wakers.drain(..).for_each(std::task::Waker::wake);
        after
    }

    /// The port is gone: fd closed, table entry removed, the program handed to the kill
    /// ladder, `:closed` sent if a close message asked for it.
    fn finish(&self, st: &mut State) {
        if st.phase == Phase::Dead {
            return;
        }
        st.phase = Phase::Dead;
        st.queue.clear();
        st.queued = 0;
        st.busy = false;
        st.rbuf = BytesMut::new();
        drop(st.fd.take());
        if let Some(w) = st.direct {
            process::wake_polling(w); // its poll holds the socket open
        }
        PORTS.write().expect("port table").remove(&self.0.id);
        let pid = self.child_ns_pid(st);
        if let (true, Ok(e)) = (pid > 0, engine::get()) {
            // The launcher ladders the program, or what is left of its group; the engine keeps
            // the port until the exit is reported, for `exit_status`. A program that exited
            // alone needs nothing (one launcher request less per short-lived port). Without a
            // pid yet, `on_spawned` does this.
            if st.exit.is_none() || st.group_left {
                e.release(pid, self.0.settings.grace, st.forked_here.is_some());
            }
            // A program forked here is the host's to reap, whoever polled it last.
            if st.lent {
                st.lent = false;
                e.unlend(self.0.id);
            }
            self.watch_pidfd(st, e);
        }
        if let Some(to) = st.reply_closed.take() {
            process::deliver(to, Message::Port(self.clone(), PortMsg::Closed));
        }
        self.cv_wake(st);
    }

    /// `Port.close/1`: closes the port. Linked processes get the exit signal `:normal` at
    /// once; queued output is still written; then the program reads EOF. No `:closed`
    /// message is sent (that is the message API's reply).
    ///
    /// ```
    /// use beamport::{Name, Port};
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// port.close().unwrap();
    /// assert!(port.close().is_err()); // badarg: already closed
    /// ```
    ///
    /// # Errors
    ///
    /// [`PortError::Closed`] if the port is already closed or closing.
    pub fn close(&self) -> Result<(), PortError> {
        let after = {
            let mut st = self.lock();
            if st.phase != Phase::Open {
                return Err(PortError::Closed(self.label()));
            }
            self.begin_close(&mut st, Reason::Normal, true, None)
        };
        after.run(self);
        Ok(())
    }

    /// Half-close (beyond OTP, whose users asked for it in ERL-128): once everything queued
    /// is written, the program reads EOF on its input; its output and exit status still come.
    ///
    /// ```
    /// use beamport::{process, Name, Opt, Port, Message, PortMsg};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("wc -c"), [Opt::Binary, Opt::ExitStatus]).unwrap();
    /// port.command("12345").unwrap();
    /// port.close_input().unwrap();
    /// let data = me.receive().unwrap();
    /// assert_eq!(data.data().unwrap().as_str().unwrap().trim(), "5");
    /// ```
    ///
    /// # Errors
    ///
    /// [`PortError::Closed`] if the port is closed.
    pub fn close_input(&self) -> Result<(), PortError> {
        let mut st = self.lock();
        if st.phase != Phase::Open {
            return Err(PortError::Closed(self.label()));
        }
        st.close_input = true;
        let _ = self.flush_queue(&mut st);
        Ok(())
    }

    /// `Port.connect/2`: makes `pid` the owner and links it. The old owner stays linked and
    /// gets no message (unlike the `{:connect, pid}` message, which answers `:connected`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Message, Name, Opt, Port};
    /// let me = process::current();
    /// let wait = Duration::from_secs(5);
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    /// let parent = me.pid();
    /// let new = process::spawn(move |new| {
    ///     let msg = new.receive_timeout(Duration::from_secs(5)).unwrap().expect("data");
    ///     process::send(parent, msg.data().unwrap().as_str().unwrap().to_string());
    /// }); // when `new` returns, the port it owns closes
    /// let down = process::monitor(new);
    /// port.connect(new).unwrap();
    /// let info = port.info().unwrap();
    /// assert_eq!((info.connected, info.links), (new, vec![me.pid(), new]));
    /// port.command("for the new owner").unwrap();
    /// let Some(Message::User(reply)) = me.receive_timeout(wait).unwrap() else { panic!() };
    /// assert_eq!(reply.downcast::<String>().unwrap(), "for the new owner");
    /// match me.receive_timeout(wait).unwrap() {
    ///     Some(Message::Down(r, _, _)) => assert_eq!(r, down),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(!port.is_open());
    /// assert!(port.connect(me.pid()).is_err()); // badarg: closed
    /// ```
    ///
    /// # Errors
    ///
    /// [`PortError::Closed`] if the port is closed, [`PortError::Badarg`] if `pid` is dead.
    pub fn connect(&self, pid: Pid) -> Result<(), PortError> {
        let mut st = self.lock();
        if st.phase != Phase::Open {
            return Err(PortError::Closed(self.label()));
        }
        if !process::add_link(pid, Id::Port(self.clone())) {
            return Err(PortError::Badarg(format!("{pid:?} is not alive")));
        }
        st.owner = pid;
        if !st.links.contains(&pid) {
            st.links.push(pid);
        }
        Ok(())
    }

    /// Monitors the port from the calling process (`Port.monitor/1`): a
    /// `{:DOWN, ref, :port, port, reason}` message follows when it ends.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Message, Name, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// let r = port.monitor();
    /// port.close().unwrap();
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("down");
    /// assert!(matches!(&msg, Message::Down(r2, _, reason) if *r2 == r && reason.is_normal()));
    /// assert_eq!(format!("{msg:?}"), format!("{{:DOWN, {r:?}, :port, {port:?}, :normal}}"));
    /// ```
    pub fn monitor(&self) -> Ref {
        process::monitor(self)
    }

    /// The program's exit status once the launcher has reported it: possibly before the
    /// port's EOF, while something the program started still holds its output (OTP sends
    /// `{:exit_status, n}` only at EOF), and still after the port closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Message, Name, Opt, Port, PortMsg};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("sh -c 'exit 3'"), [Opt::ExitStatus]).unwrap();
    /// match me.receive_timeout(Duration::from_secs(5)).unwrap() {
    ///     Some(Message::Port(_, PortMsg::ExitStatus(st))) => assert_eq!(st.code(), 3),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(!port.is_open()); // closed at EOF
    /// assert_eq!(port.exit_status().map(|st| st.code()), Some(3)); // still known
    /// ```
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.lock().exit.map(ExitStatus::from_raw)
    }

    /// Sends a signal (for example `libc::SIGTERM`) to the port's program and its process
    /// group: everything it started that stayed in its group.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("sleep 10"), [Opt::ExitStatus]).unwrap();
    /// port.signal(libc::SIGTERM).unwrap();
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("exit status");
    /// assert_eq!(format!("{msg:?}"), format!("{{{port:?}, {{:exit_status, 143}}}}")); // 128 + 15
    /// assert!(!port.is_open()); // then EOF closed it
    /// assert!(port.signal(libc::SIGTERM).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`PortError::Closed`] once the port is closed.
    pub fn signal(&self, signal: i32) -> Result<(), PortError> {
        self.signal_inner(signal, true)
    }

    /// SIGKILL to the program's whole process group.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("sleep 10"), [Opt::ExitStatus]).unwrap();
    /// port.kill().unwrap();
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("exit status");
    /// assert_eq!(format!("{msg:?}"), format!("{{{port:?}, {{:exit_status, 137}}}}")); // 128 + 9
    /// assert_eq!(port.exit_status().unwrap().signal(), Some(libc::SIGKILL));
    /// assert!(port.kill().is_err()); // closed at EOF
    /// ```
    ///
    /// # Errors
    ///
    /// [`PortError::Closed`] once the port is closed.
    pub fn kill(&self) -> Result<(), PortError> {
        self.signal_inner(libc::SIGKILL, true)
    }

    fn signal_inner(&self, signal: i32, group: bool) -> Result<(), PortError> {
        let mut st = self.lock();
        if st.phase == Phase::Dead {
            return Err(PortError::Closed(self.label()));
        }
        if !st.spawned {
            st.early_signals.push((signal, group));
            return Ok(());
        }
        if st.forked_here.is_some() {
            // The host's own child: signalled from here, as the launcher would (a reaped
            // leader's group only if members of it outlived it).
            let _ = match (&st.pidfd, group) {
                (pidfd, true) if st.exit.is_none() || st.group_left => {
                    // Just after `Port::open` the program may not have made its group yet:
                    // then it is the group.
                    sys::signal::kill_group(self.0.os_pid.load(Ordering::Relaxed), signal).or_else(|e| match pidfd {
                        Some(p) => sys::signal::pidfd_kill(p.as_fd(), signal),
                        None => Err(e),
                    })
                }
                (Some(p), false) => sys::signal::pidfd_kill(p.as_fd(), signal),
                _ => Ok(()),
            };
            return Ok(());
        }
        drop(st);
        let engine = engine::get().map_err(|e| PortError::Badarg(e.to_string()))?;
        engine.signal(self.0.child_pid.load(Ordering::Relaxed), signal, group);
        Ok(())
    }

    pub(crate) fn add_link(&self, pid: Pid) -> bool {
        let mut st = self.lock();
        if st.phase != Phase::Open {
            return false;
        }
        if !st.links.contains(&pid) {
            st.links.push(pid);
        }
        true
    }

    pub(crate) fn remove_link(&self, pid: Pid) {
        self.lock().links.retain(|p| *p != pid);
    }

    pub(crate) fn remove_monitor(&self, r: Ref) {
        self.lock().monitors.retain(|(x, _)| *x != r);
    }

    pub(crate) fn add_monitor(&self, r: Ref, pid: Pid) -> bool {
        let mut st = self.lock();
        if st.phase != Phase::Open {
            return false;
        }
        st.monitors.push((r, pid));
        true
    }

    /// An exit signal reaches the port, from a linked process that ended (`link`) or from
    /// `exit/2`. The owner's death closes the port with the owner's reason; a non-owner's
    /// `:normal` is ignored; `exit(port, :kill)` stops it without flushing.
    pub(crate) fn exit_signal(&self, from: Pid, reason: Reason, link: bool) {
        let after = {
            let mut st = self.lock();
            if link {
                st.links.retain(|p| *p != from);
            }
            if st.phase != Phase::Open {
                return;
            }
            if link {
                if from == st.owner || !reason.is_normal() {
                    self.begin_close(&mut st, reason, true, None)
                } else {
                    After::default()
                }
            } else if matches!(reason, Reason::Kill) {
                self.begin_close(&mut st, Reason::Killed, false, None)
            } else {
                self.begin_close(&mut st, reason, true, None)
            }
        };
        after.run(self);
    }
}
