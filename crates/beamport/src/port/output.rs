//! Output to the program: `Port.command`, the output queue and its busy limits (OTP's
//! host → child backpressure: a caller waits while the queue is above the high limit, until
//! it drains below the low one), and writing, directly from the caller's thread when the
//! queue is empty, else from the reactor when the socket is writable.

use std::io;
use std::os::fd::AsFd;
use std::sync::MutexGuard;

use bytes::Bytes;

use super::state::{Half, Phase, State, WatchMode};
use super::{errno_name, After, CommandFlags, Port, PortError};
use crate::driver::Driver;
use crate::framing;
use crate::message::Reason;
use crate::process;

impl Port {
    pub(super) fn wait_not_busy<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        while st.out.busy && st.phase == Phase::Open {
            st = self.cv_wait(st);
        }
        st
    }

    /// `Port.command/2`: sends data to the program. Returns once the data is accepted: written
    /// or queued. While the port is busy (its queue above the high busy limit) the calling
    /// thread waits until the queue drains below the low limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(4)]).unwrap();
    /// port.command("ping").unwrap(); // Port.command(port, "ping")
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("a packet");
    /// assert_eq!(msg.data().unwrap().as_str(), Some("ping"));
    /// port.close().unwrap();
    /// assert!(port.command("late").is_err()); // badarg once closed
    /// ```
    ///
    /// # Errors
    ///
    /// [`PortError::Closed`] if the port is closed; [`PortError::PacketTooLarge`] if the
    /// data does not fit a `{:packet, 1|2}` header (the port stays open).
    pub fn command(&self, data: impl Into<Bytes>) -> Result<(), PortError> {
        self.command_with(data, CommandFlags::default()).map(|_| ())
    }

    /// `Port.command/3`: like [`Port::command`]; with `nosuspend`, returns `Ok(false)` instead
    /// of waiting when the port is busy (the data is not sent).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, CommandFlags, Name, Opt, Port, PortError};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    /// let nosuspend = CommandFlags { nosuspend: true, force: false };
    /// assert!(port.command_with("hi", nosuspend).unwrap()); // not busy: sent at once
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("data");
    /// assert_eq!(msg.data().unwrap().as_str(), Some("hi"));
    /// let force = CommandFlags { nosuspend: false, force: true };
    /// assert!(matches!(port.command_with("hi", force), Err(PortError::NotSup)));
    /// port.close().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Port::command`], plus [`PortError::NotSup`] for `force`.
    pub fn command_with(&self, data: impl Into<Bytes>, flags: CommandFlags) -> Result<bool, PortError> {
        if flags.force {
            return Err(PortError::NotSup);
        }
        let data = data.into();
        let after = {
            let mut st = self.lock();
            if st.phase != Phase::Open {
                return Err(PortError::Closed(self.label()));
            }
            if st.out.busy && flags.nosuspend {
                return Ok(false);
            }
            st = self.wait_not_busy(st);
            self.accept(&mut st, data)?
        };
        after.run(self);
        Ok(true)
    }

    /// The function API's acceptance of a command on a port that is not busy: refused if the
    /// port or its input is closed, or if the data does not fit the packet header (the port
    /// stays open); otherwise written or queued.
    fn accept(&self, st: &mut State, data: Bytes) -> Result<After, PortError> {
        if st.phase != Phase::Open {
            return Err(PortError::Closed(self.label()));
        }
        if st.out.half != Half::Open {
            return Err(PortError::InputClosed(self.label()));
        }
        framing::header(self.inner().settings.framing, data.len())?;
        if process::current_pid() == st.life.owner {
            self.lend_for_reply(st);
        }
        Ok(match self.write(st, data) {
            Ok(()) => After::default(),
            Err(reason) => self.begin_close(st, reason, false, None),
        })
    }

    /// [`Port::command`] for async callers: while the port is busy the task waits without
    /// blocking its thread.
    ///
    /// ```
    /// # use beamport::{Name, Port};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct W(std::thread::Thread);
    /// #     impl std::task::Wake for W { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = std::sync::Arc::new(W(std::thread::current())).into();
    /// #     let mut cx = std::task::Context::from_waker(&w);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } std::thread::park() }
    /// # }
    /// let port = Port::open(Name::spawn("cat > /dev/null"), []).unwrap();
    /// block_on(port.command_async("hello")).unwrap();
    /// port.close().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Port::command`].
    pub fn command_async(
        &self,
        data: impl Into<Bytes>,
    ) -> impl std::future::Future<Output = Result<(), PortError>> + '_ {
        let mut data = Some(data.into());
        std::future::poll_fn(move |cx| {
            let after = {
                let mut st = self.lock();
                if st.phase != Phase::Open {
                    return std::task::Poll::Ready(Err(PortError::Closed(self.label())));
                }
                if st.out.busy {
                    st.out.busy_wakers.push(cx.waker().clone());
                    return std::task::Poll::Pending;
                }
                match self.accept(&mut st, data.take().expect("polled after completion")) {
                    Ok(after) => after,
                    Err(e) => return std::task::Poll::Ready(Err(e)),
                }
            };
            after.run(self);
            std::task::Poll::Ready(Ok(()))
        })
    }

    /// Queues `data` (with its packet header) and writes what the driver takes now.
    /// `Err(reason)` means the port must end with that reason (OTP's `einval`, `ebadf`, `epipe`).
    pub(super) fn write(&self, st: &mut State, data: Bytes) -> Result<(), Reason> {
        let settings = &self.inner().settings;
        if !settings.writes {
            return Err(Reason::atom("ebadf"));
        }
        let header = framing::header(settings.framing, data.len()).map_err(|_| Reason::atom("einval"))?;
        st.out.sent += data.len() as u64;
        let h = header.as_bytes();
        if !h.is_empty() {
            st.out.queued += h.len();
            st.out.queue.push_back(Bytes::copy_from_slice(h));
        }
        if !data.is_empty() {
            st.out.queued += data.len();
            st.out.queue.push_back(data);
        }
        self.flush_queue(st)?;
        if let Some((_, high)) = settings.busy {
            if st.out.queued >= high {
                st.out.busy = true;
            }
        }
        Ok(())
    }

    /// Writes queued output until the driver takes no more or the queue is empty.
    pub(super) fn flush_queue(&self, st: &mut State) -> Result<(), Reason> {
        if st.phase == Phase::Dead {
            return Ok(());
        }
        while !st.out.queue.is_empty() {
            let slices: Vec<io::IoSlice<'_>> = st.out.queue.iter().take(64).map(|b| io::IoSlice::new(b)).collect();
            match st.driver.write(&slices) {
                Ok(mut n) => {
                    drop(slices);
                    st.out.queued -= n;
                    while n > 0 {
                        let front = st.out.queue.front_mut().expect("bytes were queued");
                        if n >= front.len() {
                            n -= front.len();
                            st.out.queue.pop_front();
                        } else {
                            let _ = front.split_to(n);
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Reason::atom(errno_name(&e))),
            }
        }
        if st.out.busy {
            let low = self.inner().settings.busy.map_or(0, |(l, _)| l);
            if st.out.queued < low || st.out.queue.is_empty() {
                st.out.busy = false;
                self.cv_wake(st);
                st.out.busy_wakers.drain(..).for_each(std::task::Waker::wake);
            }
        }
        if st.out.queue.is_empty() && st.out.half == Half::Draining {
            st.out.half = Half::Closed;
            st.driver.shutdown_write();
        }
        self.want_writable(st, !st.out.queue.is_empty());
        Ok(())
    }

    /// Asks for (or stops asking for) the driver's fd to be watched for room for output.
    fn want_writable(&self, st: &mut State, want: bool) {
        let armed = matches!(st.watch.mode, WatchMode::Reactor { write: true });
        if want == armed {
            return;
        }
        let Some(fd) = st.driver.io_fd().cloned() else { return };
        let Some(e) = crate::engine::started() else { return };
        let id = self.inner().id;
        match st.watch.mode {
            // The polling thread hands the socket back to the reactor, for writability.
            WatchMode::Lent { poller: Some(w) } => {
                if want {
                    process::wake_polling(w);
                }
            }
            WatchMode::Reactor { .. } => {
                if e.want_write(fd.as_fd(), id, want).is_ok() {
                    st.watch.mode = WatchMode::Reactor { write: want };
                }
            }
            // Lent, or left out after a read by the owner saw EOF: back in, for writes, and
            // the reactor watches the rest of the port too (the exit of a program the host
            // forked), as when it takes a lent port back.
            WatchMode::Lent { poller: None } | WatchMode::Off => {
                if want && e.register(fd.as_fd(), id, true).is_ok() {
                    if matches!(st.watch.mode, WatchMode::Lent { .. }) {
                        e.unlend(id);
                    }
                    st.watch.mode = WatchMode::Reactor { write: true };
                    self.watch_exit(st, e);
                }
            }
        }
    }

    /// Called by the engine when the driver can take more output.
    pub(super) fn on_writable(&self) {
        let after = {
            let mut st = self.lock();
            if !matches!(st.phase, Phase::Open | Phase::Closing) {
                return;
            }
            match self.flush_queue(&mut st) {
                Err(reason) if st.phase == Phase::Open => self.begin_close(&mut st, reason, false, None),
                Err(_) => {
                    self.finish(&mut st);
                    After::default()
                }
                Ok(()) => {
                    if st.phase == Phase::Closing && st.out.queue.is_empty() {
                        self.finish(&mut st);
                    }
                    After::default()
                }
            }
        };
        after.run(self);
    }
}
