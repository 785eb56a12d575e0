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

mod mailbox;
mod signals;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, OnceLock, RwLock};
use std::task::Waker;

pub use self::mailbox::Process;
pub(crate) use self::mailbox::{deliver, is_poll_candidate, replace_poll_candidate, wake_polling};
use self::signals::terminate;
pub(crate) use self::signals::{add_link, exit_signal, remove_link};
pub use self::signals::{demonitor, demonitor_with, exit, link, monitor, unlink, DemonitorOpts, LinkError};
pub use crate::message::Pid;
use crate::message::{Id, Message, Port, Reason, Ref, UserMsg};
use crate::sys;

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
    /// Ports this process owns: they close when it ends, linked to it or not.
    owns: Vec<Port>,
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

/// Records that `pid` owns `port`; false if `pid` is dead (it cannot own anything).
pub(crate) fn adopt(pid: Pid, port: &Port) -> bool {
    let Some(p) = lookup(pid) else { return false };
    let mut st = p.state.lock().expect("mailbox");
    if st.exit.is_some() {
        return false;
    }
    if st.owns.len() == st.owns.capacity() {
        // Ports closed since are dropped before the list grows: it stays within twice the
        // ports the process owns, at no cost per close.
        st.owns.retain(|p| !p.0.closing());
    }
    st.owns.push(port.clone());
    true
}

/// `pid` no longer owns `port` (it was connected to another process).
pub(crate) fn disown(pid: Pid, port: &Port) {
    if let Some(p) = lookup(pid) {
        p.state.lock().expect("mailbox").owns.retain(|x| x != port);
    }
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
