//! A process's mailbox, as its own thread sees it: [`Process`] and its receives, and how a
//! message reaches it ([`deliver`]) and wakes its thread, whether that thread waits on the
//! condvar, a future, or polls one of its ports itself.

use std::fmt;
use std::future::Future;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{lookup, terminate, Exited, Inner, Pid, State, NEXT_PID, TABLE};
use crate::message::{Message, Port, Reason};
use crate::sys;

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
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.pid.fmt(f)
    }
}

impl Process {
    pub(super) fn new() -> Self {
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
            if let (Some(port), Ok(wake)) = (poll_candidate(), self.wake_fd()) {
                // Wait on the port's socket itself: its reply then costs no reactor hop.
                st.polling = true;
                drop(st);
                let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let polled =
                    port.0.poll_for_owner(&port, self.inner.pid, wake, timeout, &mut || self.lock().polling = false);
                st = self.lock();
                st.polling = false;
                if polled && deadline.is_some_and(|d| Instant::now() >= d) && !st.queue.iter().any(&mut pred) {
                    return Ok(None);
                }
                // Polled, or not pollable now (then it is no longer the candidate): look again
                // at the mailbox, where a message may have come meanwhile.
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

thread_local! {
    /// The port this thread's blocking receives poll themselves, since a reply is likely to
    /// come from it: the one its process last opened or commanded as owner (the port layer
    /// sets it; see `PortPeer::poll_for_owner`).
    static POLL_CANDIDATE: std::cell::RefCell<Option<Port>> = const { std::cell::RefCell::new(None) };
}

/// This thread's poll candidate.
fn poll_candidate() -> Option<Port> {
    POLL_CANDIDATE.with(|c| c.borrow().clone())
}

/// Makes `port` (or nothing) this thread's poll candidate; returns the one it replaces.
pub(crate) fn replace_poll_candidate(port: Option<Port>) -> Option<Port> {
    POLL_CANDIDATE.with(|c| std::mem::replace(&mut *c.borrow_mut(), port))
}

/// Whether `port` is this thread's poll candidate.
pub(crate) fn is_poll_candidate(port: &Port) -> bool {
    POLL_CANDIDATE.with(|c| c.borrow().as_ref() == Some(port))
}

/// Puts `msg` in `pid`'s mailbox; false if it is dropped instead: the process is dead (as on
/// the BEAM), or `msg` is the `Down` of a monitor the process has given up (`demonitor`).
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
        // Its monitor is listed until a `Down` or `demonitor` removes it, under this lock: a
        // `Down` sent by an item that ended while the process demonitored it stays out.
        let Some(i) = st.monitors.iter().position(|(x, _)| x == r) else { return false };
        st.monitors.remove(i);
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
