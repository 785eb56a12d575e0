//! Processes: the BEAM side that ports take for granted.
//!
//! A process is a mailbox with a [`Pid`], links, monitors and an exit state. The calling
//! thread becomes one with [`current`]; [`spawn`] starts one on its own thread. Messages are
//! [`Message`]s: what ports send, exit signals delivered to processes that trap exits, `Down`
//! messages, and any `Send + 'static` value sent with [`send`].
//!
//! # How a killed process learns it is dead
//!
//! Rust cannot stop a thread from outside. When an exit signal kills a process (a non-normal
//! reason while it does not trap exits, or `:kill`), the process is dead at once for everyone
//! else: its links and monitors fire, the ports it owns close, and messages sent to it are
//! dropped. Its thread learns it at its next mailbox call, which returns
//! [`Exited`]`(reason)` from then on — as does a call that was blocked waiting.
//!
//! ```
//! use beamport::{process, Message, Reason};
//! let me = process::current();
//! me.trap_exit(true);
//! let child = process::spawn_link(|_me| panic!("boom"));
//! match me.receive().unwrap() {
//!     Message::Exit(from, Reason::Panic(msg)) => {
//!         assert_eq!(from, child.into());
//!         assert!(msg.contains("boom"));
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, OnceLock, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::message::{Id, Message, Reason, Ref, UserMsg};
use crate::sys;

/// A process identifier, printed as iex does: `#PID<0.80.0>`.
///
/// # Examples
///
/// ```
/// use beamport::process;
/// let me = process::current().pid();
/// assert!(format!("{me:?}").starts_with("#PID<0."));
/// let other = process::spawn(|_| {});
/// assert_ne!(other, me);
/// let copy = me; // `Copy`: pids are plain values
/// assert_eq!(copy, me);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(u64);

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#PID<0.{}.0>", self.0)
    }
}

impl Pid {
    /// Whether the process is alive.
    ///
    /// ```
    /// let me = beamport::process::current();
    /// assert!(me.pid().is_alive());
    /// ```
    pub fn is_alive(&self) -> bool {
        lookup(*self).is_some_and(|p| p.state.lock().expect("mailbox").exit.is_none())
    }
}

/// The error every mailbox call returns once the process is dead.
///
/// # Examples
///
/// ```
/// use beamport::{process, Exited, Reason};
/// let me = process::current();
/// me.exit(Reason::atom("done"));
/// assert_eq!(me.receive().unwrap_err(), Exited(Reason::atom("done")));
/// assert_eq!(me.flush().unwrap_err().to_string(), "process exited with reason :done");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("process exited with reason {0:?}")]
pub struct Exited(pub Reason);

pub(crate) struct Inner {
    pid: Pid,
    state: Mutex<State>,
    cv: Condvar,
    /// Wakes the process's thread while it polls a port itself (see [`State::polling`]);
    /// made on first use.
    wake: OnceLock<OwnedFd>,
}

impl Inner {
    /// Wakes the process's thread if it waits: through the condvar, or the eventfd while it
    /// polls a port. `st` is the mailbox state just before the lock is released.
    fn wake_waiter(&self, polling: bool, waiting: bool) {
        if polling {
            if let Some(fd) = self.wake.get() {
                sys::fd::eventfd_signal(fd.as_fd());
            }
        } else if waiting {
            self.cv.notify_all();
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Message>,
    exit: Option<Reason>,
    trap_exit: bool,
    links: Vec<Id>,
    monitored_by: Vec<(Ref, Pid)>,
    /// Monitors this process holds, removed from their targets when it ends.
    monitors: Vec<(Ref, Id)>,
    wakers: Vec<Waker>,
    /// Threads blocked in a receive: a delivery wakes the condvar only when some wait,
    /// which saves a futex call per message on busy mailboxes.
    waiting: u32,
    /// The process's thread is blocked polling one of its ports' sockets and its wake
    /// eventfd instead of the condvar: data from that port reaches it without the reactor.
    polling: bool,
}

static NEXT_PID: AtomicU64 = AtomicU64::new(80);
static NEXT_REF: AtomicU64 = AtomicU64::new(1);
static TABLE: LazyLock<RwLock<HashMap<Pid, Arc<Inner>>>> = LazyLock::new(Default::default);

thread_local! {
    static CURRENT: CurrentGuard = CurrentGuard::new();
}

struct CurrentGuard(Process);

impl CurrentGuard {
    fn new() -> Self {
        CurrentGuard(Process::new())
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        terminate(&self.0.inner, Reason::Normal);
    }
}

fn lookup(pid: Pid) -> Option<Arc<Inner>> {
    TABLE.read().expect("process table").get(&pid).cloned()
}

pub(crate) fn new_ref() -> Ref {
    Ref(NEXT_REF.fetch_add(1, Ordering::Relaxed))
}

/// The calling thread's process, registered on first use (Erlang's `self()`). It ends, with
/// reason `:normal`, when the thread ends.
///
/// ```
/// let me = beamport::process::current();
/// assert_eq!(me.pid(), beamport::process::current().pid());
/// ```
pub fn current() -> Process {
    CURRENT.with(|c| c.0.clone())
}

/// A handle on a process's own mailbox and flags. Only the process's own thread should
/// receive from it, as on the BEAM.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Message};
/// let me = process::current();
/// let parent = me.pid();
/// process::spawn(move |child| process::send(parent, format!("hello from {child:?}")));
/// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap();
/// let Some(Message::User(u)) = msg else { panic!("{msg:?}") };
/// assert!(u.downcast::<String>().unwrap().starts_with("hello from #PID<0."));
/// ```
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.pid.fmt(f)
    }
}

impl Process {
    fn new() -> Self {
        let pid = Pid(NEXT_PID.fetch_add(1, Ordering::Relaxed));
        let inner =
            Arc::new(Inner { pid, state: Mutex::new(State::default()), cv: Condvar::new(), wake: OnceLock::new() });
        TABLE.write().expect("process table").insert(pid, inner.clone());
        Process { inner }
    }

    /// This process's pid.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Message, Pid};
    /// let me = process::current();
    /// let parent = me.pid();
    /// let child = process::spawn(move |child| process::send(parent, child.pid()));
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap();
    /// let Some(Message::User(u)) = msg else { panic!("{msg:?}") };
    /// assert_eq!(u.downcast::<Pid>().unwrap(), child);
    /// ```
    pub fn pid(&self) -> Pid {
        self.inner.pid
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().expect("mailbox")
    }

    /// Sets `trap_exit` and returns the old value. A trapping process receives exit signals
    /// (other than `:kill`) as [`Message::Exit`] instead of dying.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Message, Reason};
    /// let me = process::current();
    /// assert!(!me.trap_exit(true)); // off by default
    /// let child = process::spawn_link(|p| p.exit(Reason::atom("boom")));
    /// match me.receive_timeout(Duration::from_secs(5)).unwrap() {
    ///     Some(Message::Exit(from, reason)) => {
    ///         assert_eq!(from, child.into());
    ///         assert_eq!(reason, Reason::atom("boom"));
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(me.is_alive()); // trapped: still alive
    /// assert!(me.trap_exit(false));
    /// ```
    pub fn trap_exit(&self, on: bool) -> bool {
        std::mem::replace(&mut self.lock().trap_exit, on)
    }

    /// Whether this process is alive.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{process, Reason};
    /// let me = process::current();
    /// assert!(me.is_alive());
    /// me.exit(Reason::Normal);
    /// assert!(!me.is_alive());
    /// assert!(!me.pid().is_alive());
    /// ```
    pub fn is_alive(&self) -> bool {
        self.lock().exit.is_none()
    }

    /// The reason this process ended with, if it has.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{process, Reason};
    /// let me = process::current();
    /// assert_eq!(me.exit_reason(), None);
    /// process::exit(me.pid(), Reason::Kill); // exit(self(), :kill)
    /// assert_eq!(me.exit_reason(), Some(Reason::Killed));
    /// ```
    pub fn exit_reason(&self) -> Option<Reason> {
        self.lock().exit.clone()
    }

    /// Number of messages waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::process;
    /// let me = process::current();
    /// assert_eq!(me.message_queue_len(), 0);
    /// process::send(me.pid(), 1);
    /// process::send(me.pid(), 2);
    /// assert_eq!(me.message_queue_len(), 2);
    /// me.receive().unwrap();
    /// assert_eq!(me.message_queue_len(), 1);
    /// ```
    pub fn message_queue_len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Waits for the next message.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{process, Message};
    /// let me = process::current();
    /// let parent = me.pid();
    /// process::spawn(move |_| process::send(parent, "first"));
    /// let Message::User(u) = me.receive().unwrap() else { panic!() };
    /// assert_eq!(u.downcast::<&str>().unwrap(), "first");
    /// ```
    ///
    /// # Errors
    ///
    /// [`Exited`] once the process is dead, including while it waits.
    pub fn receive(&self) -> Result<Message, Exited> {
        self.receive_match(|_| true, None).map(|m| m.expect("no timeout"))
    }

    /// Waits at most `timeout` for the next message (`receive ... after`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::process;
    /// let me = process::current();
    /// assert!(me.receive_timeout(Duration::from_millis(10)).unwrap().is_none()); // `after 10`
    /// process::send(me.pid(), "here");
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap();
    /// assert_eq!(format!("{msg:?}"), r#"Some("here")"#);
    /// ```
    ///
    /// # Errors
    ///
    /// [`Exited`] once the process is dead, including while it waits.
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Option<Message>, Exited> {
        self.receive_match(|_| true, Some(timeout))
    }

    /// Selective receive: takes the first message for which `pred` is true, leaving the
    /// others in order; waits at most `timeout` (forever with `None`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Message};
    /// let me = process::current();
    /// process::send(me.pid(), 1u32);
    /// process::send(me.pid(), "two");
    /// let two = me.receive_match(|m| matches!(m, Message::User(u) if u.downcast_ref::<&str>().is_some()),
    ///                            Some(Duration::from_secs(1))).unwrap().unwrap();
    /// assert_eq!(format!("{two:?}"), "\"two\"");
    /// assert_eq!(me.flush().unwrap().len(), 1);
    /// ```
    pub fn receive_match(
        &self,
        mut pred: impl FnMut(&Message) -> bool,
        timeout: Option<Duration>,
    ) -> Result<Option<Message>, Exited> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.lock();
        loop {
            if let Some(r) = &st.exit {
                return Err(Exited(r.clone()));
            }
            if let Some(i) = st.queue.iter().position(&mut pred) {
                let m = st.queue.remove(i).expect("index in range");
                drop(st);
                m.taken();
                return Ok(Some(m));
            }
            if let (Some(port), Ok(wake)) = (crate::port::direct_candidate(), self.wake_fd()) {
                // Wait on the port's socket itself: its reply then costs no reactor hop.
                st.polling = true;
                drop(st);
                let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let polled = port.wait_direct(self.inner.pid, wake, timeout, || self.lock().polling = false);
                st = self.lock();
                st.polling = false;
                if polled {
                    if deadline.is_some_and(|d| Instant::now() >= d) && !st.queue.iter().any(&mut pred) {
                        return Ok(None);
                    }
                    continue;
                }
                // Not pollable now: wait on the condvar, after looking again at the mailbox
                // (a message may have come while the port was being checked).
                crate::port::forget_direct(&port);
                continue;
            }
            st.waiting += 1;
            st = match deadline {
                None => self.inner.cv.wait(st).expect("mailbox"),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        st.waiting -= 1;
                        return Ok(None);
                    }
                    self.inner.cv.wait_timeout(st, d - now).expect("mailbox").0
                }
            };
            st.waiting -= 1;
        }
    }

    fn wake_fd(&self) -> std::io::Result<BorrowedFd<'_>> {
        if self.inner.wake.get().is_none() {
            let fd = sys::fd::eventfd()?;
            let _ = self.inner.wake.set(fd);
        }
        Ok(self.inner.wake.get().expect("set above").as_fd())
    }

    /// Takes every message waiting, without blocking (iex's `flush()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::process;
    /// let me = process::current();
    /// process::send(me.pid(), "a");
    /// process::send(me.pid(), "b");
    /// assert_eq!(format!("{:?}", me.flush().unwrap()), r#"["a", "b"]"#);
    /// assert!(me.flush().unwrap().is_empty());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Exited`] once the process is dead.
    pub fn flush(&self) -> Result<Vec<Message>, Exited> {
        let mut st = self.lock();
        if let Some(r) = &st.exit {
            return Err(Exited(r.clone()));
        }
        let all: Vec<Message> = st.queue.drain(..).collect();
        drop(st);
        all.iter().for_each(Message::taken);
        Ok(all)
    }

    /// Waits for the next message without blocking a thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{process, Message};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct W(std::thread::Thread);
    /// #     impl std::task::Wake for W { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = std::sync::Arc::new(W(std::thread::current())).into();
    /// #     let mut cx = std::task::Context::from_waker(&w);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v }
    /// #         std::thread::park()
    /// #     }
    /// # }
    /// let me = process::current();
    /// let parent = me.pid();
    /// process::spawn(move |_| process::send(parent, 7u8));
    /// let Message::User(u) = block_on(me.receive_async()).unwrap() else { panic!() };
    /// assert_eq!(u.downcast::<u8>().unwrap(), 7);
    /// ```
    pub fn receive_async(&self) -> impl Future<Output = Result<Message, Exited>> + '_ {
        ReceiveFuture { process: self }
    }

    /// Ends this process with `reason` (Erlang's `exit/1`): links and monitors fire, owned
    /// ports close, and every later mailbox call returns [`Exited`].
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{process, Exited, Name, Port, Reason};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// me.exit(Reason::atom("done"));
    /// assert!(!me.is_alive());
    /// assert!(!port.is_open()); // its ports closed with it
    /// assert_eq!(me.receive().unwrap_err(), Exited(Reason::atom("done")));
    /// ```
    pub fn exit(&self, reason: Reason) {
        terminate(&self.inner, reason);
    }
}

struct ReceiveFuture<'a> {
    process: &'a Process,
}

impl Future for ReceiveFuture<'_> {
    type Output = Result<Message, Exited>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.process.lock();
        if let Some(r) = &st.exit {
            return Poll::Ready(Err(Exited(r.clone())));
        }
        if let Some(m) = st.queue.pop_front() {
            drop(st);
            m.taken();
            return Poll::Ready(Ok(m));
        }
        st.wakers.push(cx.waker().clone());
        Poll::Pending
    }
}

/// Puts `msg` in `pid`'s mailbox; false if the process is dead (the message is dropped, as
/// on the BEAM).
pub(crate) fn deliver(pid: Pid, msg: Message) -> bool {
    let Some(p) = lookup(pid) else {
        msg.taken();
        return false;
    };
    let mut st = p.state.lock().expect("mailbox");
    if st.exit.is_some() {
        drop(st);
        msg.taken();
        return false;
    }
    if let Message::Down(r, _, _) = &msg {
        st.monitors.retain(|(x, _)| x != r);
    }
    st.queue.push_back(msg);
    let wakers = std::mem::take(&mut st.wakers);
    let (polling, waiting) = (st.polling, st.waiting > 0);
    drop(st);
    p.wake_waiter(polling, waiting);
    wakers.into_iter().for_each(Waker::wake);
    true
}

/// Wakes `pid`'s thread if it is polling a port's socket itself (see `Port::wait_direct`).
pub(crate) fn wake_polling(pid: Pid) {
    if let Some(p) = lookup(pid) {
        let polling = p.state.lock().expect("mailbox").polling;
        p.wake_waiter(polling, false);
    }
}

/// The calling thread's pid (`process::current().pid()` without the handle).
pub(crate) fn current_pid() -> Pid {
    CURRENT.with(|c| c.0.inner.pid)
}

/// Sends any `Send + 'static` value to a process (Erlang's `send/2`). Sending to a dead
/// process does nothing.
///
/// ```
/// use beamport::process;
/// let me = process::current();
/// process::send(me.pid(), 42u64);
/// let m = me.receive().unwrap();
/// let beamport::Message::User(u) = m else { panic!() };
/// assert_eq!(u.downcast::<u64>().unwrap(), 42);
/// ```
pub fn send<T: std::any::Any + Send>(pid: Pid, value: T) {
    deliver(pid, Message::User(UserMsg { value: Box::new(value), type_name: std::any::type_name::<T>() }));
}

/// Starts a process on its own thread. It ends with `:normal` when `f` returns, or with
/// [`Reason::Panic`] if `f` panics.
///
/// ```
/// use beamport::process;
/// let parent = process::current().pid();
/// process::spawn(move |me| process::send(parent, me.pid()));
/// let m = process::current().receive().unwrap();
/// assert!(matches!(m, beamport::Message::User(_)));
/// ```
pub fn spawn<F>(f: F) -> Pid
where
    F: FnOnce(Process) + Send + 'static,
{
    spawn_inner(f, false)
}

/// Like [`spawn`], and links the new process to the caller first.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Message, Reason};
/// let me = process::current();
/// me.trap_exit(true);
/// let child = process::spawn_link(|_| {}); // returns: ends with :normal
/// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("exit signal");
/// assert!(matches!(msg, Message::Exit(from, Reason::Normal) if from == child.into()));
/// assert_eq!(format!("{:?}", Message::Exit(child.into(), Reason::Normal)),
///            format!("{{:EXIT, {child:?}, :normal}}"));
/// ```
pub fn spawn_link<F>(f: F) -> Pid
where
    F: FnOnce(Process) + Send + 'static,
{
    spawn_inner(f, true)
}

fn spawn_inner<F>(f: F, link_caller: bool) -> Pid
where
    F: FnOnce(Process) + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let parent = link_caller.then(|| current().pid());
    std::thread::Builder::new()
        .name("beamport-process".into())
        .spawn(move || {
            let me = current();
            if let Some(parent) = parent {
                add_link(me.pid(), Id::Pid(parent));
                add_link(parent, Id::Pid(me.pid()));
                if !parent.is_alive() {
                    exit_signal(Id::Pid(parent), me.pid(), Reason::Noproc, true);
                }
            }
            let _ = tx.send(me.pid());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(me.clone())));
            let reason = match result {
                Ok(()) => Reason::Normal,
                Err(p) => Reason::Panic(
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into())
                        .into(),
                ),
            };
            terminate(&me.inner, reason);
        })
        .expect("spawning a process thread");
    rx.recv().expect("new process reports its pid")
}

pub(crate) fn add_link(pid: Pid, to: Id) -> bool {
    let Some(p) = lookup(pid) else { return false };
    let mut st = p.state.lock().expect("mailbox");
    if st.exit.is_some() {
        return false;
    }
    if !st.links.contains(&to) {
        st.links.push(to);
    }
    true
}

pub(crate) fn remove_link(pid: Pid, to: &Id) {
    if let Some(p) = lookup(pid) {
        p.state.lock().expect("mailbox").links.retain(|l| l != to);
    }
}

pub(crate) fn add_monitor(pid: Pid, r: Ref, watcher: Pid) -> bool {
    let Some(p) = lookup(pid) else { return false };
    let mut st = p.state.lock().expect("mailbox");
    if st.exit.is_some() {
        return false;
    }
    st.monitored_by.push((r, watcher));
    true
}

/// Links the calling process to a process or a port (Erlang's `link/1`). Linking to
/// something dead sends the caller an exit signal `:noproc`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Message, Reason};
/// let me = process::current();
/// me.trap_exit(true);
/// let child = process::spawn(|p| {
///     let _ = p.receive(); // waits until killed
/// });
/// process::link(child);
/// process::exit(child, Reason::atom("crash"));
/// match me.receive_timeout(Duration::from_secs(5)).unwrap() {
///     Some(Message::Exit(from, reason)) => {
///         assert_eq!(from, child.into());
///         assert_eq!(reason, Reason::atom("crash"));
///     }
///     other => panic!("{other:?}"),
/// }
///
/// process::link(child); // dead by now: {:EXIT, child, :noproc}
/// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("exit signal");
/// assert!(matches!(msg, Message::Exit(_, Reason::Noproc)));
/// ```
pub fn link(to: impl Into<Id>) {
    let me = current().pid();
    let to = to.into();
    let ok = match &to {
        Id::Pid(p) => *p != me && add_link(*p, Id::Pid(me)),
        Id::Port(port) => port.add_link(me),
    };
    if ok {
        add_link(me, to);
    } else if to != Id::Pid(me) {
        exit_signal(to, me, Reason::Noproc, true);
    }
}

/// Removes a link between the caller and `to` (Erlang's `unlink/1`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Message, Reason};
/// let me = process::current();
/// let child = process::spawn_link(|p| {
///     let _ = p.receive();
///     p.exit(Reason::atom("crash"));
/// });
/// process::unlink(child);
/// let r = process::monitor(child);
/// process::send(child, "go");
/// match me.receive_timeout(Duration::from_secs(5)).unwrap() {
///     Some(Message::Down(r2, _, reason)) => {
///         assert_eq!(r2, r);
///         assert_eq!(reason, Reason::atom("crash"));
///     }
///     other => panic!("{other:?}"),
/// }
/// assert!(me.is_alive()); // no longer linked: the crash did not spread
/// ```
pub fn unlink(to: impl Into<Id>) {
    let me = current().pid();
    let to = to.into();
    remove_link(me, &to);
    match &to {
        Id::Pid(p) => remove_link(*p, &Id::Pid(me)),
        Id::Port(port) => port.remove_link(me),
    }
}

/// Monitors a process or a port: when it ends, the caller gets
/// `{:DOWN, ref, type, item, reason}`; at once with `:noproc` if it is already gone.
///
/// ```
/// use beamport::{process, Message, Reason};
/// let me = process::current();
/// let pid = process::spawn(|_| {});
/// let r = process::monitor(pid);
/// match me.receive().unwrap() {
///     Message::Down(r2, _, reason) => { assert_eq!(r2, r); assert!(reason == Reason::Normal || reason == Reason::Noproc); }
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn monitor(item: impl Into<Id>) -> Ref {
    let me = current().pid();
    let r = new_ref();
    let item = item.into();
    // Recorded first: a `Down` delivered from now on removes it again.
    if let Some(p) = lookup(me) {
        p.state.lock().expect("mailbox").monitors.push((r, item.clone()));
    }
    let ok = match &item {
        Id::Pid(p) => add_monitor(*p, r, me),
        Id::Port(port) => port.add_monitor(r, me),
    };
    if !ok {
        deliver(me, Message::Down(r, item, Reason::Noproc));
    }
    r
}

/// Removes a monitor; a `Down` already delivered stays in the mailbox (as `demonitor/1`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Message};
/// let me = process::current();
/// let child = process::spawn(|p| {
///     let _ = p.receive();
/// });
/// let dropped = process::monitor(child);
/// let kept = process::monitor(child);
/// process::demonitor(dropped);
/// process::send(child, "stop");
/// match me.receive_timeout(Duration::from_secs(5)).unwrap() {
///     Some(Message::Down(r, _, _)) => assert_eq!(r, kept),
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(me.message_queue_len(), 0); // nothing for `dropped`
/// ```
pub fn demonitor(r: Ref) {
    let held = lookup(current().pid()).and_then(|p| {
        let mut st = p.state.lock().expect("mailbox");
        let i = st.monitors.iter().position(|(x, _)| *x == r)?;
        Some(st.monitors.remove(i).1)
    });
    if let Some(item) = held {
        forget_monitor(r, &item);
    }
}

/// Removes monitor `r` from the item it watches.
fn forget_monitor(r: Ref, item: &Id) {
    match item {
        Id::Pid(p) => {
            if let Some(p) = lookup(*p) {
                p.state.lock().expect("mailbox").monitored_by.retain(|(x, _)| *x != r);
            }
        }
        Id::Port(port) => port.remove_monitor(r),
    }
}

/// Sends an exit signal to a process or a port (Erlang's `exit/2`).
///
/// To a process: `:kill` ends it untrappably (links see `:killed`); `:normal` is ignored
/// unless it traps exits; anything else ends it unless it traps exits, in which case it
/// receives `{:EXIT, caller, reason}`. To a port: see [`crate::Port`]'s exit rules
/// (`:normal` closes it from any process, `:kill` stops it without flushing).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Message, Reason};
/// let me = process::current();
/// let wait = Duration::from_secs(5);
///
/// // A process that does not trap exits dies with the reason.
/// let plain = process::spawn(|p| {
///     let _ = p.receive();
/// });
/// let r = process::monitor(plain);
/// process::exit(plain, Reason::atom("stop"));
/// let down = me.receive_timeout(wait).unwrap().expect("down");
/// assert!(matches!(down, Message::Down(r2, _, why) if r2 == r && why == Reason::atom("stop")));
///
/// // A trapping process gets {:EXIT, caller, reason} as a message instead...
/// let parent = me.pid();
/// let trapper = process::spawn(move |p| {
///     p.trap_exit(true);
///     process::send(parent, "trapping");
///     while let Ok(msg) = p.receive() {
///         process::send(parent, format!("{msg:?}"));
///     }
/// });
/// let r = process::monitor(trapper);
/// assert!(me.receive_timeout(wait).unwrap().is_some()); // "trapping"
/// process::exit(trapper, Reason::atom("stop"));
/// let Some(Message::User(u)) = me.receive_timeout(wait).unwrap() else { panic!() };
/// assert_eq!(u.downcast::<String>().unwrap(), format!("{{:EXIT, {parent:?}, :stop}}"));
/// assert!(trapper.is_alive());
///
/// // ...but :kill cannot be trapped: it dies, and monitors see :killed.
/// process::exit(trapper, Reason::Kill);
/// let down = me.receive_timeout(wait).unwrap().expect("down");
/// assert!(matches!(down, Message::Down(r2, _, Reason::Killed) if r2 == r));
/// ```
pub fn exit(to: impl Into<Id>, reason: Reason) {
    let from = Id::Pid(current().pid());
    match to.into() {
        Id::Pid(p) => exit_signal(from, p, reason, false),
        Id::Port(port) => port.exit_signal(current().pid(), reason, false),
    }
}

/// Delivers an exit signal from `from` to process `to` following Erlang's rules. `link`
/// marks a signal caused by a link, which also dissolves that link.
pub(crate) fn exit_signal(from: Id, to: Pid, reason: Reason, link: bool) {
    let Some(p) = lookup(to) else { return };
    let mut st = p.state.lock().expect("mailbox");
    if st.exit.is_some() {
        return;
    }
    if link {
        st.links.retain(|l| *l != from);
    }
    let dies = if matches!(reason, Reason::Kill) && !link {
        Some(Reason::Killed)
    } else if st.trap_exit {
        st.queue.push_back(Message::Exit(from, reason));
        let wakers = std::mem::take(&mut st.wakers);
        let polling = st.polling;
        drop(st);
        p.wake_waiter(polling, true);
        wakers.into_iter().for_each(Waker::wake);
        return;
    } else if reason.is_normal() {
        if from == Id::Pid(to) {
            Some(Reason::Normal)
        } else {
            None
        }
    } else {
        Some(reason)
    };
    drop(st);
    if let Some(r) = dies {
        terminate(&p, r);
    }
}

/// Ends a process: one place for the state change, then links, monitors and owned ports.
fn terminate(p: &Arc<Inner>, reason: Reason) {
    let mut st = p.state.lock().expect("mailbox");
    if st.exit.is_some() {
        return;
    }
    st.exit = Some(reason.clone());
    let queue = std::mem::take(&mut st.queue);
    let links = std::mem::take(&mut st.links);
    let monitors = std::mem::take(&mut st.monitored_by);
    let held = std::mem::take(&mut st.monitors);
    let wakers = std::mem::take(&mut st.wakers);
    let polling = st.polling;
    drop(st);
    p.wake_waiter(polling, true);
    wakers.into_iter().for_each(Waker::wake);
    queue.iter().for_each(Message::taken);
    let me = p.pid;
    // Processes see the reason as it is: a process that ended itself with `:kill` is seen
    // with `:kill`, an ordinary reason through a link. Ports take `:kill` as
    // `exit(port, :kill)` and report `:killed` (OTP 25).
    let for_ports = reason.propagated();
    // Its ports close before anyone can see the death: a port connected to this pid after a
    // `Down` or `is_alive() == false` belongs to a dead owner and stays open (E4).
    crate::port::owner_gone(me, &for_ports);
    TABLE.write().expect("process table").remove(&p.pid);
    for l in links {
        match l {
            Id::Pid(other) => exit_signal(Id::Pid(me), other, reason.clone(), true),
            Id::Port(port) => port.exit_signal(me, for_ports.clone(), true),
        }
    }
    for (r, watcher) in monitors {
        deliver(watcher, Message::Down(r, Id::Pid(me), reason.clone()));
    }
    for (r, item) in held {
        forget_monitor(r, &item);
    }
}

/// Pids of all live processes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::process;
/// let me = process::current();
/// let child = process::spawn(|p| {
///     let _ = p.receive();
/// });
/// assert!(process::list().contains(&me.pid()));
/// assert!(process::list().contains(&child));
/// process::monitor(child);
/// process::send(child, "stop");
/// me.receive_timeout(Duration::from_secs(5)).unwrap().expect("down");
/// assert!(!process::list().contains(&child));
/// ```
pub fn list() -> Vec<Pid> {
    let mut v: Vec<Pid> = TABLE.read().expect("process table").keys().copied().collect();
    v.sort();
    v
}
