//! Links, monitors and exit signals between processes and ports, by Erlang's rules, and the
//! one place a process ends ([`terminate`]).

use std::sync::Arc;
use std::task::Waker;

use super::{current, deliver, lookup, new_ref, Inner, Pid, TABLE};
use crate::message::{Id, Message, Reason, Ref};

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

/// Why [`link`] failed: Erlang's `link/1` raises the same.
///
/// # Examples
///
/// ```
/// use beamport::process::{self, LinkError};
/// let dead = process::spawn(|_| {});
/// # let me = process::current();
/// # let r = process::monitor(dead);
/// # me.receive().unwrap(); // its `Down`: dead now
/// let e = process::link(dead).unwrap_err();
/// assert_eq!(e, LinkError::Noproc(dead.into()));
/// assert_eq!(e.to_string(), format!("noproc: {dead:?} is not alive"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// `noproc`: the process or port is not alive (a port is not once it closes), and the
    /// caller does not trap exits. A caller that traps them gets `Ok` and
    /// `{:EXIT, item, :noproc}` instead.
    #[error("noproc: {0:?} is not alive")]
    Noproc(Id),
    /// The calling process has exited itself: it links nothing any more.
    #[error("the calling process has exited ({0:?})")]
    Exited(Reason),
}

/// Links the calling process to a process or a port (Erlang's `link/1`), both ways: when
/// either ends, the other gets an exit signal with its reason. Linking to itself or to
/// something already linked does nothing.
///
/// Linking to something that is not alive follows OTP 25: a caller that traps exits gets
/// `Ok` and the message `{:EXIT, item, :noproc}`; one that does not gets
/// [`LinkError::Noproc`] (`link/1` raises `noproc`) and lives on.
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
/// process::link(child).unwrap();
/// process::exit(child, Reason::atom("crash"));
/// match me.receive_timeout(Duration::from_secs(5)).unwrap() {
///     Some(Message::Exit(from, reason)) => {
///         assert_eq!(from, child.into());
///         assert_eq!(reason, Reason::atom("crash"));
///     }
///     other => panic!("{other:?}"),
/// }
///
/// process::link(child).unwrap(); // dead by now, and trapping: {:EXIT, child, :noproc}
/// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("exit signal");
/// assert!(matches!(msg, Message::Exit(_, Reason::Noproc)));
///
/// me.trap_exit(false); // not trapping: `noproc` is the caller's error, not its death
/// assert_eq!(process::link(child), Err(process::LinkError::Noproc(child.into())));
/// assert!(me.is_alive());
/// ```
///
/// # Errors
///
/// [`LinkError::Noproc`] for an item that is not alive while the caller does not trap exits;
/// [`LinkError::Exited`] if the caller has exited.
pub fn link(to: impl Into<Id>) -> Result<(), LinkError> {
    let me = current();
    let to = to.into();
    if to == Id::Pid(me.pid()) {
        return Ok(());
    }
    if let Some(reason) = me.exit_reason() {
        return Err(LinkError::Exited(reason));
    }
    let ok = match &to {
        Id::Pid(p) => add_link(*p, Id::Pid(me.pid())),
        Id::Port(port) => port.0.add_link(me.pid()),
    };
    if !ok {
        if !me.inner.state.lock().expect("mailbox").trap_exit {
            return Err(LinkError::Noproc(to));
        }
        exit_signal(to, me.pid(), Reason::Noproc, true);
        return Ok(());
    }
    if !add_link(me.pid(), to.clone()) {
        // Exited meanwhile: no half link left behind.
        match &to {
            Id::Pid(p) => remove_link(*p, &Id::Pid(me.pid())),
            Id::Port(port) => port.0.remove_link(me.pid()),
        }
        return Err(LinkError::Exited(me.exit_reason().unwrap_or(Reason::Noproc)));
    }
    Ok(())
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
        Id::Port(port) => port.0.remove_link(me),
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
    // Recorded first: a `Down` is let in only while its monitor is listed (see `deliver`).
    if let Some(p) = lookup(me) {
        p.state.lock().expect("mailbox").monitors.push((r, item.clone()));
    }
    let ok = match &item {
        Id::Pid(p) => add_monitor(*p, r, me),
        Id::Port(port) => port.0.add_monitor(r, me),
    };
    if !ok {
        deliver(me, Message::Down(r, item, Reason::Noproc));
    }
    r
}

/// Removes a monitor (Erlang's `demonitor/1`). Once it returns, no `Down` for `r` comes any
/// more; one already in the mailbox stays there ([`demonitor_with`] and
/// [`DemonitorOpts::flush`] remove it too).
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
    demonitor_with(r, DemonitorOpts::default());
}

/// The options of [`demonitor_with`]: Erlang's `demonitor/2` and Elixir's
/// `Process.demonitor(ref, [:flush, :info])`.
///
/// # Examples
///
/// ```
/// use beamport::process::DemonitorOpts;
/// let flush = DemonitorOpts { flush: true, ..DemonitorOpts::default() }; // [:flush]
/// assert!(flush.flush && !flush.info);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DemonitorOpts {
    /// `:flush`: also remove a `{:DOWN, ref, ...}` already in the mailbox, so that none is
    /// there after the call, nor ever comes.
    pub flush: bool,
    /// `:info`: return whether the monitor was still there (`true`), or had fired, its `Down`
    /// delivered (and flushed with `:flush`), or was never the caller's (`false`).
    pub info: bool,
}

/// Removes a monitor with options (Erlang's `demonitor/2`, Elixir's
/// `Process.demonitor(ref, opts)`). Returns `true`, or with [`DemonitorOpts::info`] whether
/// the monitor was removed before it fired. Once it returns, no `Down` for `r` comes any more,
/// whichever thread ends the monitored item meanwhile; with [`DemonitorOpts::flush`] none is
/// in the mailbox either.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::process::{self, DemonitorOpts};
/// use beamport::{Name, Port};
/// let me = process::current();
/// let port = Port::open(Name::spawn("cat"), []).unwrap();
/// let fired = port.monitor();
/// let active = port.monitor();
/// let flush_info = DemonitorOpts { flush: true, info: true };
/// assert!(process::demonitor_with(active, DemonitorOpts { info: true, ..DemonitorOpts::default() }));
/// port.close().unwrap(); // `fired`'s DOWN is in the mailbox now
/// assert_eq!(me.message_queue_len(), 1);
/// assert!(!process::demonitor_with(fired, flush_info)); // had fired: false, DOWN flushed
/// assert_eq!(me.message_queue_len(), 0);
/// assert!(!process::demonitor_with(fired, flush_info)); // unknown by now
/// assert!(process::demonitor_with(fired, DemonitorOpts::default())); // plain: always true
/// ```
pub fn demonitor_with(r: Ref, opts: DemonitorOpts) -> bool {
    let me = current();
    let held = {
        // One lock for both: a `Down` is let in only while its monitor is listed here (see
        // `deliver`), so none can slip in after the flush.
        let mut st = me.inner.state.lock().expect("mailbox");
        let held = st.monitors.iter().position(|(x, _)| *x == r).map(|i| st.monitors.remove(i).1);
        if opts.flush {
            st.queue.retain(|m| !matches!(m, Message::Down(x, ..) if *x == r));
        }
        held
    };
    let found = held.is_some();
    if let Some(item) = held {
        forget_monitor(r, &item);
    }
    !opts.info || found
}

/// Removes monitor `r` from the item it watches.
fn forget_monitor(r: Ref, item: &Id) {
    match item {
        Id::Pid(p) => {
            if let Some(p) = lookup(*p) {
                p.state.lock().expect("mailbox").monitored_by.retain(|(x, _)| *x != r);
            }
        }
        Id::Port(port) => port.0.remove_monitor(r),
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
        Id::Port(port) => port.0.exit_signal(&port, current().pid(), reason, false),
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
pub(super) fn terminate(p: &Arc<Inner>, reason: Reason) {
    let mut st = p.state.lock().expect("mailbox");
    if st.exit.is_some() {
        return;
    }
    st.exit = Some(reason.clone());
    let queue = std::mem::take(&mut st.queue);
    let links = std::mem::take(&mut st.links);
    let monitors = std::mem::take(&mut st.monitored_by);
    let held = std::mem::take(&mut st.monitors);
    let owns = std::mem::take(&mut st.owns);
    let wakers = std::mem::take(&mut st.wakers);
    let polling = st.polling;
    drop(st);
    p.wake_waiter(polling, true);
    wakers.into_iter().for_each(Waker::wake);
    let me = p.pid;
    // Processes see the reason as it is: a process that ended itself with `:kill` is seen
    // with `:kill`, an ordinary reason through a link. Ports take `:kill` as
    // `exit(port, :kill)` and report `:killed` (OTP 25).
    let for_ports = reason.propagated();
    // Its own monitors go first, as on the BEAM: whoever gets its `Down` or exit signal finds
    // it gone from what it monitored (`monitored_by`).
    for (r, item) in held {
        forget_monitor(r, &item);
    }
    // Its ports close before anyone can see the death: a port connected to this pid after a
    // `Down` or `is_alive() == false` belongs to a dead owner and stays open, as on the BEAM
    // (docs/otp-semantics.md#connect).
    for port in owns {
        port.0.owner_exited(&port, me, &for_ports);
    }
    // Then the dropped messages give their ports' read windows back: a port paused at a full
    // window, closed already, does not start reading again for an owner that is gone.
    queue.iter().for_each(Message::taken);
    TABLE.write().expect("process table").remove(&p.pid);
    for l in links {
        match l {
            Id::Pid(other) => exit_signal(Id::Pid(me), other, reason.clone(), true),
            Id::Port(port) => port.0.exit_signal(&port, me, for_ports.clone(), true),
        }
    }
    for (r, watcher) in monitors {
        deliver(watcher, Message::Down(r, Id::Pid(me), reason.clone()));
    }
}
