//! A port's life: the message API, closing, connect, links, monitors and exit signals, by
//! OTP's rules.

use super::state::{Half, Phase, State, WatchMode};
use super::{After, Port, PortError, Request, TABLE};
use crate::driver::Driver;
use crate::message::{Id, Message, Pid, PortMsg, Reason, Ref};
use crate::process;

impl Port {
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
            if from != st.life.owner {
                let mut a = After::default();
                a.signals.push((st.life.owner, Reason::atom("badsig"), false));
                a
            } else {
                match request {
                    Request::Command(data) => {
                        st = self.wait_not_busy(st);
                        if st.phase != Phase::Open || st.out.half != Half::Open {
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
                        let owner = st.life.owner;
                        self.begin_close(&mut st, Reason::Normal, true, Some(owner))
                    }
                    Request::Connect(new) => {
                        self.change_owner(&mut st, new);
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
    pub(super) fn begin_close(&self, st: &mut State, reason: Reason, flush: bool, reply: Option<Pid>) -> After {
        if st.phase != Phase::Open {
            return After::default();
        }
        st.phase = Phase::Closing;
        st.life.reply_closed = reply;
        if let WatchMode::Lent { poller: Some(w) } = st.watch.mode {
            process::wake_polling(w); // it hands the socket back for the flush
        }
        let mut after = After::default();
        for pid in std::mem::take(&mut st.life.links) {
            after.signals.push((pid, reason.clone(), true));
        }
        for (r, pid) in std::mem::take(&mut st.life.monitors) {
            after.downs.push((r, pid, reason.clone()));
        }
        self.inner().closing.store(true, std::sync::atomic::Ordering::Relaxed);
        if !flush {
            st.out.queue.clear();
            st.out.queued = 0;
        }
        if st.out.queue.is_empty() {
            after.closed = st.life.reply_closed.take();
            self.finish(st);
        } else {
            // Input stops now: the program's writes fail instead of blocking the flush
            // (docs/otp-semantics.md#closing-with-output-queued). And the kill ladder's grace
            // starts now, whatever is still queued: a program that never reads its input does
            // not keep its port, and itself, alive.
            st.driver.shutdown_read();
            st.driver.release();
        }
        self.cv_wake(st);
        st.out.busy_wakers.drain(..).for_each(std::task::Waker::wake);
        after
    }

    /// The port is gone: its I/O closed, the thing behind it handed to the kill ladder,
    /// `:closed` sent if a close message asked for it.
    pub(super) fn finish(&self, st: &mut State) {
        if st.phase == Phase::Dead {
            return;
        }
        st.phase = Phase::Dead;
        st.out.queue.clear();
        st.out.queued = 0;
        st.out.busy = false;
        st.inp.rbuf = bytes::BytesMut::new();
        st.driver.close_io();
        let lent = matches!(st.watch.mode, WatchMode::Lent { .. });
        if let WatchMode::Lent { poller: Some(w) } = st.watch.mode {
            process::wake_polling(w); // its poll holds the socket open
        }
        st.watch.mode = WatchMode::Off;
        st.driver.release();
        if let Some(e) = crate::engine::started() {
            // A program forked here is the host's to reap, whoever polled it last.
            if lent {
                e.unlend(self.inner().id);
            }
            self.watch_exit(st, e);
        }
        if let Some(to) = st.life.reply_closed.take() {
            process::deliver(to, Message::Port(self.clone(), PortMsg::Closed));
        }
        self.forget_if_done(st);
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
        if st.out.half == Half::Open {
            st.out.half = Half::Draining;
        }
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
        self.change_owner(&mut st, pid);
        if !st.life.links.contains(&pid) {
            st.life.links.push(pid);
        }
        Ok(())
    }

    /// Makes `new` the owner, with whose reason the port closes when it ends.
    fn change_owner(&self, st: &mut State, new: Pid) {
        let old = std::mem::replace(&mut st.life.owner, new);
        if old != new {
            process::disown(old, self);
            process::adopt(new, self);
        }
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

    /// An exit signal reaches the port, from a linked process that ended (`link`) or from
    /// `exit/2`. The owner's death closes the port with the owner's reason; a non-owner's
    /// `:normal` is ignored; `exit(port, :kill)` stops it without flushing.
    pub(super) fn exit_signal(&self, from: Pid, reason: Reason, link: bool) {
        let after = {
            let mut st = self.lock();
            if link {
                st.life.links.retain(|p| *p != from);
            }
            if st.phase != Phase::Open {
                return;
            }
            if link {
                if from == st.life.owner || !reason.is_normal() {
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

    /// The owner ended: the port closes with its reason, even if it had unlinked itself
    /// (OTP would leave such a port open for ever; docs/otp-semantics.md#owner-death).
    pub(super) fn owner_exited(&self, owner: Pid, reason: &Reason) {
        let after = {
            let mut st = self.lock();
            if st.life.owner == owner && st.phase == Phase::Open {
                self.begin_close(&mut st, reason.clone(), true, None)
            } else {
                After::default()
            }
        };
        after.run(self);
    }

    /// The VM's answer to a message a port does not understand: the exit signal `:badsig`
    /// from the port to its owner; the port stays open.
    #[cfg(feature = "term")]
    pub(crate) fn badsig(&self) {
        let owner = {
            let st = self.lock();
            if st.phase != Phase::Open {
                return;
            }
            st.life.owner
        };
        process::exit_signal(Id::Port(self.clone()), owner, Reason::atom("badsig"), false);
    }

    /// Undoes a port that never started: no program, no messages, no signals.
    pub(super) fn abandon(&self, st: &mut State) {
        st.phase = Phase::Dead;
        st.behind.started = true;
        st.life.links.clear();
        st.driver.close_io();
        self.inner().closing.store(true, std::sync::atomic::Ordering::Relaxed);
        process::disown(st.life.owner, self);
        TABLE.write().expect("port table").remove(&self.inner().id);
    }
}
