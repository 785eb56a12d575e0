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
mod options;

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, RwLock};

use bytes::{Bytes, BytesMut};

use self::direct::set_direct;
pub(crate) use self::direct::{direct_candidate, forget_direct};
pub(crate) use self::error::errno_name;
pub use self::error::{OpenError, PortError};
pub use self::info::{Item, ItemValue, PortInfo};
pub(crate) use self::options::Settings;
pub use self::options::{Name, Opt, DEFAULT_GRACE, DEFAULT_READ_WINDOW, DEFAULT_SPIN_WAIT};
use crate::engine;
use crate::framing::{self, Decoder, Frame};
use crate::message::{Data, ExitStatus, Id, Message, PortMsg, Reason, Ref};
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
    /// The host forked the program itself (`Engine::spawn_direct`), not the launcher.
    forked_here: bool,
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

/// Bytes asked of each `read`: one message in stream mode.
const READ_SIZE: usize = 256 * 1024;

/// `SO_SNDBUF` of both ends of a port's socket.
const SOCKET_BUFFER: usize = 1 << 20;

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

fn frame_to_data(frame: Frame, list: bool) -> Data {
    match frame {
        Frame::Data(bytes) => Data { bytes, line: None, list },
        Frame::Line { eol, data } => Data { bytes: data, line: Some(eol), list },
    }
}

impl Port {
    /// Opens a port (`Port.open/2`); the calling process becomes its owner and is linked to it.
    ///
    /// `{:spawn, cmd}` runs `/bin/sh -c "exec cmd"`: a missing program still opens, then exits
    /// with 127. `{:spawn_executable, path}` runs no shell; a missing file is `enoent`, a
    /// non-executable one `eacces`, both naming the path.
    ///
    /// Like OTP's `open_port`, it returns once the launcher has the request, not after the
    /// fork, so one caller can have many spawns in flight. [`Port::os_pid`] waits for the pid;
    /// a fork that fails (`eagain`, `enomem`) ends the port with that reason, as an exit signal.
    ///
    /// ```
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let echo = beamport::find_executable("echo").unwrap();
    /// let port = Port::open(Name::executable(echo), [Opt::Binary, Opt::args(["hello world"])]).unwrap();
    /// let msg = me.receive().unwrap();
    /// assert_eq!(msg.data().unwrap().bytes().as_ref(), b"hello world\n");
    /// # let _ = port.close();
    /// ```
    ///
    /// # Errors
    ///
    /// [`OpenError`], with OTP's name for each case.
    pub fn open(name: Name, opts: impl IntoIterator<Item = Opt>) -> Result<Port, OpenError> {
        let opts: Vec<Opt> = opts.into_iter().collect();
        let me = process::current();
        if let Some(r) = me.exit_reason() {
            return Err(OpenError::Exited(r));
        }
        let settings = Settings::parse(&name, &opts)?;
        let (program, argv, label) = match &name {
            Name::Spawn(cmd) => {
                if cmd.trim().is_empty() {
                    return Err(OpenError::Badarg { what: "{:spawn, \"\"}: empty command".into() });
                }
                let argv = vec![b"sh".to_vec(), b"-c".to_vec(), format!("exec {cmd}").into_bytes()];
                (b"/bin/sh".to_vec(), argv, cmd.clone())
            }
            Name::Executable(path) => {
                if path.as_os_str().is_empty() {
                    return Err(OpenError::Badarg { what: "{:spawn_executable, \"\"}: empty path".into() });
                }
                if let Err(e) = sys::fd::check_executable(path) {
                    return Err(match e.raw_os_error() {
                        Some(libc::EACCES) | Some(libc::EPERM) => OpenError::Eacces { path: path.clone() },
                        Some(libc::ENOENT) | Some(libc::ENOTDIR) => OpenError::Enoent { path: path.clone() },
                        _ => OpenError::system(e),
                    });
                }
                let p = path.as_os_str().as_bytes().to_vec();
                let mut argv = vec![settings.arg0.as_ref().map_or(p.clone(), |a| a.as_bytes().to_vec())];
                argv.extend(settings.args.iter().flatten().map(|a| a.as_bytes().to_vec()));
                (p, argv, path.to_string_lossy().into_owned())
            }
        };
        let cd = settings.cd.as_ref().map(|d| d.as_os_str().as_bytes().to_vec()).unwrap_or_default();
        // The inherited environment has no NUL (it is made of C strings): only what the
        // options add is checked.
        let changes = settings.env.iter().flat_map(|(k, v)| [Some(k.as_bytes()), v.as_ref().map(|v| v.as_bytes())]);
        for s in argv.iter().map(Vec::as_slice).chain([program.as_slice(), cd.as_slice()]).chain(changes.flatten()) {
            if s.contains(&0) {
                return Err(OpenError::Badarg { what: format!("NUL byte in {:?}", String::from_utf8_lossy(s)) });
            }
        }
        let envp = merged_env(&settings.env);
        // What only the spawn needs is not kept for the port's lifetime.
        let mut settings = settings;
        settings.env = Vec::new();
        settings.args = None;
        settings.arg0 = None;
        settings.cd = None;
        let engine = engine::get().map_err(OpenError::system)?;
        let (host, child) = sys::fd::stream_pair().map_err(OpenError::system)?;
        sys::fd::set_nonblocking(host.as_fd(), true).map_err(OpenError::system)?;
        // Bigger socket buffers mean fewer wake-ups on bulk transfers; the kernel allocates
        // them only as data is queued, so idle ports cost nothing more.
        sys::fd::set_send_buffer(host.as_fd(), SOCKET_BUFFER);
        sys::fd::set_send_buffer(child.as_fd(), SOCKET_BUFFER);
        let port = Port(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: label.into(),
            state: Mutex::new(State {
                phase: Phase::Opening,
                owner: me.pid(),
                links: vec![me.pid()],
                monitors: Vec::new(),
                input: 0,
                output: 0,
                queue: VecDeque::new(),
                queued: 0,
                busy: false,
                decoder: Decoder::new(settings.framing),
                rbuf: BytesMut::new(),
                fd: Some(Arc::new(host)),
                read_eof: false,
                input_done: false,
                exit: None,
                close_input: false,
                input_closed: false,
                reply_closed: None,
                busy_wakers: Vec::new(),
                write_armed: false,
                group_left: false,
                registered: false,
                spawned: false,
                early_signals: Vec::new(),
                direct: None,
                lent: false,
                forked_here: false,
                replying: false,
                pidfd: None,
                cv_waiters: 0,
                pidfd_watched: false,
            }),
            settings,
            cv: Condvar::new(),
            unread: AtomicUsize::new(0),
            read_paused: AtomicBool::new(false),
            os_pid: AtomicI32::new(-1),
            child_pid: AtomicI32::new(-1),
        }));
        let s = &port.0.settings;
        let mut flags = 0;
        if s.reads {
            flags |= crate::launcher::proto::flags::READS;
        }
        if s.writes {
            flags |= crate::launcher::proto::flags::WRITES;
        }
        if s.nouse_stdio {
            flags |= crate::launcher::proto::flags::NOUSE_STDIO;
        }
        if s.stderr_to_stdout {
            flags |= crate::launcher::proto::flags::STDERR_TO_STDOUT;
        }
        PORTS.write().expect("port table").insert(port.0.id, port.clone());
        let here = engine.direct_ok(child.as_fd());
        {
            let mut st = port.lock();
            st.phase = Phase::Open;
            if here && port.0.settings.reads {
                // Forked here: lent to the opener from the start. It is likely to wait for the
                // program next, polling its socket and pidfd itself; else the reactor takes
                // them back within `LEND_FOR`.
                st.lent = true;
                engine.still_lent(port.0.id);
            } else {
                let fd = st.fd.as_ref().expect("fd until closed");
                let registered = engine.register(fd.as_fd(), port.0.id, false);
                st.registered = registered.is_ok();
                if let Err(e) = registered {
                    port.abandon(&mut st);
                    return Err(OpenError::system(e));
                }
            }
        }
        // Linked before the spawn, so that an exit signal from a failed spawn reaches the caller.
        if !process::add_link(me.pid(), Id::Port(port.clone())) {
            port.abandon(&mut port.lock());
            return Err(OpenError::Exited(me.exit_reason().unwrap_or(Reason::Noproc)));
        }
        // A child forked here starts in the host's working directory; the launcher's is told.
        let cwd = if here { Vec::new() } else { current_dir() };
        let spec = crate::launcher::proto::SpawnSpec { flags, program, argv, envp, cwd, cd };
        // Forked here when the host may (as `posix_spawn` would, into the launcher's PID
        // namespace); else the launcher answers later (`on_spawned`), and many opens can be
        // in flight at once.
        let sent = if here { port.spawn_here(engine, spec, child) } else { engine.spawn(&port, spec, child) };
        if let Err(e) = sent {
            process::remove_link(me.pid(), &Id::Port(port.clone()));
            port.abandon(&mut port.lock());
            return Err(OpenError::system(e));
        }
        set_direct(&port);
        Ok(port)
    }

    /// Undoes a port that never started: no program, no messages, no signals.
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

    fn wait_not_busy<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        while st.busy && st.phase == Phase::Open {
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
            if st.busy && flags.nosuspend {
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
        if st.input_closed || st.close_input {
            return Err(PortError::InputClosed(self.label()));
        }
        framing::header(self.0.settings.framing, data.len())?;
        if process::current_pid() == st.owner {
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
                if st.busy {
                    st.busy_wakers.push(cx.waker().clone());
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

    /// Queues `data` (with its packet header) and writes what the socket takes now.
    /// `Err(reason)` means the port must end with that reason (OTP's `einval`, `ebadf`, `epipe`).
    fn write(&self, st: &mut State, data: Bytes) -> Result<(), Reason> {
        if !self.0.settings.writes {
            return Err(Reason::atom("ebadf"));
        }
        let header = framing::header(self.0.settings.framing, data.len()).map_err(|_| Reason::atom("einval"))?;
        st.output += data.len() as u64;
        let h = header.as_bytes();
        if !h.is_empty() {
            st.queued += h.len();
            st.queue.push_back(Bytes::copy_from_slice(h));
        }
        if !data.is_empty() {
            st.queued += data.len();
            st.queue.push_back(data);
        }
        self.flush_queue(st)?;
        if let Some((_, high)) = self.0.settings.busy {
            if st.queued >= high {
                st.busy = true;
            }
        }
        Ok(())
    }

    /// Writes queued output until the socket is full or the queue empty.
    fn flush_queue(&self, st: &mut State) -> Result<(), Reason> {
        let Some(fd) = st.fd.as_ref() else { return Ok(()) };
        while !st.queue.is_empty() {
            let slices: Vec<io::IoSlice<'_>> = st.queue.iter().take(64).map(|b| io::IoSlice::new(b)).collect();
            match sys::fd::send_vectored(fd.as_fd(), &slices) {
                Ok(mut n) => {
                    st.queued -= n;
                    while n > 0 {
                        let front = st.queue.front_mut().expect("bytes were queued");
                        if n >= front.len() {
                            n -= front.len();
                            st.queue.pop_front();
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
        if st.busy {
            let low = self.0.settings.busy.map_or(0, |(l, _)| l);
            if st.queued < low || st.queue.is_empty() {
                st.busy = false;
                self.cv_wake(st);
                st.busy_wakers.drain(..).for_each(std::task::Waker::wake);
            }
        }
        if st.queue.is_empty() && st.close_input && !st.input_closed {
            st.input_closed = true;
            let _ = sys::fd::shutdown_write(fd.as_fd());
        }
        let want = !st.queue.is_empty();
        if want != st.write_armed {
            if let Some(w) = st.direct {
                // The polling thread hands the socket back to the reactor, for writability.
                if want {
                    process::wake_polling(w);
                }
            } else if let Ok(e) = engine::get() {
                let armed = if st.registered {
                    e.want_write(fd.as_fd(), self.0.id, want)
                } else if want {
                    // Lent, or left out after a direct read saw EOF: back in, for writes.
                    st.lent = false;
                    e.register(fd.as_fd(), self.0.id, true).inspect(|_| st.registered = true)
                } else {
                    Ok(())
                };
                if armed.is_ok() {
                    st.write_armed = want;
                }
            }
        }
        Ok(())
    }

    /// Called by the engine when the socket can take more output.
    pub(crate) fn on_writable(&self) {
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
                    if st.phase == Phase::Closing && st.queue.is_empty() {
                        self.finish(&mut st);
                    }
                    After::default()
                }
            }
        };
        after.run(self);
    }

    /// Called by the engine when the socket has input (or EOF).
    pub(crate) fn on_readable(&self, shared: &mut BytesMut) {
        let after = {
            let mut st = self.lock();
            self.read_input(&mut st, shared, false)
        };
        after.run(self);
    }

    fn window_full(&self) -> bool {
        self.0.settings.read_window.is_some_and(|w| self.0.unread.load(Ordering::SeqCst) >= w)
    }

    /// Reads until `WouldBlock` (the reactor's sockets are edge-triggered), or with
    /// `short_ok` until a read returns less than asked (a direct poll is level-triggered, so
    /// what is left shows up at the next poll; this saves a read per reply).
    fn read_input(&self, st: &mut State, shared: &mut BytesMut, short_ok: bool) -> After {
        let mut after = After::default();
        if st.phase != Phase::Open || st.read_eof || !self.0.settings.reads {
            return after;
        }
        loop {
            if self.window_full() {
                // Paused, then checked again: `input_taken` empties the window, then looks at
                // the flag (both `SeqCst`), so one of the two sees the other and reading resumes.
                self.0.read_paused.store(true, Ordering::SeqCst);
                if self.window_full() {
                    return after;
                }
                self.0.read_paused.store(false, Ordering::SeqCst);
                continue;
            }
            let Some(fd) = st.fd.as_ref() else { return after };
            let want = st.decoder.wanted().unwrap_or(0).clamp(READ_SIZE, 1 << 20);
            let own = !st.rbuf.is_empty();
            let buf = if own { &mut st.rbuf } else { &mut *shared };
            buf.reserve(want);
            let room = buf.capacity() - buf.len();
            match sys::fd::read_into(fd.as_fd(), buf) {
                Ok(0) => {
                    self.on_eof(st, &mut after);
                    return after;
                }
                Ok(n) => {
                    st.input += n as u64;
                    if !own {
                        st.rbuf = shared.split();
                    }
                    self.deliver_frames(st, false, |to, m| {
                        process::deliver(to, m);
                    });
                    if short_ok && n < room {
                        return after;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return after,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => {
                    self.on_eof(st, &mut after);
                    return after;
                }
                Err(e) => {
                    after.merge(self.begin_close(st, Reason::atom(errno_name(&e)), false, None));
                    return after;
                }
            }
        }
    }

    /// Decodes what `rbuf` holds (all of it at EOF) and hands each frame's message to `out`.
    fn deliver_frames(&self, st: &mut State, at_eof: bool, mut out: impl FnMut(Pid, Message)) {
        let list = !self.0.settings.binary;
        loop {
            let frame = if at_eof { st.decoder.decode_eof(&mut st.rbuf) } else { st.decoder.decode(&mut st.rbuf) };
            match frame {
                Ok(Some(f)) => {
                    let data = frame_to_data(f, list);
                    self.0.unread.fetch_add(data.bytes.len(), Ordering::SeqCst);
                    out(st.owner, Message::Port(self.clone(), PortMsg::Data(data)));
                }
                Ok(None) | Err(_) => break,
            }
        }
        if st.rbuf.is_empty() {
            st.rbuf = BytesMut::new();
        }
    }

    fn on_eof(&self, st: &mut State, after: &mut After) {
        st.read_eof = true;
        if !st.spawned {
            return; // a failed spawn ends the port with its error, not `:normal`
        }
        if self.0.settings.exit_status && st.exit.is_none() {
            return; // the status comes first; wait for the launcher's report
        }
        self.finish_input(st, after)
    }

    /// EOF seen and, if asked for, the exit status known: OTP's order is
    /// `exit_status`, the final partial line, then `:eof` or the exit signal `:normal`.
    fn finish_input(&self, st: &mut State, after: &mut After) {
        if st.input_done || st.phase != Phase::Open {
            return;
        }
        st.input_done = true;
        let owner = st.owner;
        let mut last = Vec::new();
        if self.0.settings.exit_status {
            if let Some(raw) = st.exit {
                last.push(Message::Port(self.clone(), PortMsg::ExitStatus(ExitStatus::from_raw(raw))));
            }
        }
        self.deliver_frames(st, true, |_, m| last.push(m));
        if self.0.settings.eof {
            last.push(Message::Port(self.clone(), PortMsg::Eof));
        } else {
            // Closed before its last messages go out, still under the lock: an owner that has
            // them finds the port closed, as before deliveries moved under the lock.
            after.merge(self.begin_close(st, Reason::Normal, false, None));
        }
        for m in last {
            process::deliver(owner, m);
        }
    }

    /// Called by the engine when the launcher has started the program.
    pub(crate) fn on_spawned(&self, pid: i32, host_pid: i32) {
        let (after, signals) = {
            let mut st = self.lock();
            self.0.child_pid.store(pid, Ordering::Relaxed);
            self.0.os_pid.store(host_pid, Ordering::Relaxed);
            st.spawned = true;
            self.cv_wake(&st);
            let signals = std::mem::take(&mut st.early_signals);
            let mut after = After::default();
            if st.phase == Phase::Dead {
                // Closed before the answer: `finish` left the program to us.
                if let Ok(e) = engine::get() {
                    signals.iter().for_each(|&(sig, group)| e.signal(pid, sig, group));
                    e.release(pid, self.0.settings.grace, false);
                }
                return;
            }
            if st.read_eof {
                self.on_eof(&mut st, &mut after);
            }
            (after, signals)
        };
        if let Ok(e) = engine::get() {
            signals.into_iter().for_each(|(sig, group)| e.signal(pid, sig, group));
        }
        after.run(self);
    }

    /// Called by the engine when the launcher could not start the program (`fork` failed,
    /// or the launcher is gone): the port exits with the error's name, as OTP's does when its
    /// forker fails.
    pub(crate) fn on_spawn_failed(&self, errno: i32) {
        let after = {
            let mut st = self.lock();
            st.spawned = true;
            st.early_signals.clear();
            self.cv_wake(&st);
            let reason = Reason::atom(errno_name(&io::Error::from_raw_os_error(errno)));
            self.begin_close(&mut st, reason, false, None)
        };
        after.run(self);
    }

    /// Called by the engine when the program has exited (reported by the launcher, or
    /// reaped by the reactor when the host forked it).
    pub(crate) fn on_child_exit(&self, raw: i32, group_left: bool) {
        let after = {
            let mut st = self.lock();
            self.child_exited(&mut st, raw, group_left)
        };
        after.run(self);
    }

    fn child_exited(&self, st: &mut State, raw: i32, group_left: bool) -> After {
        st.exit = Some(raw);
        st.group_left = group_left;
        st.pidfd = None;
        st.pidfd_watched = false;
        let mut after = After::default();
        if st.read_eof {
            self.finish_input(st, &mut after);
        }
        after
    }

    /// Forks the program on this thread ([`engine::Engine::spawn_direct`]): the port is
    /// spawned when this returns. Falls back to the launcher if the pidfd cannot be had (the
    /// fd limit), since that way needs no fd more.
    fn spawn_here(
        &self,
        engine: &engine::Engine,
        spec: crate::launcher::proto::SpawnSpec,
        child: OwnedFd,
    ) -> io::Result<()> {
        // The child starts in the host's working directory: no `chdir` to it.
        let cspec = spec.into_child(child, crate::launcher::proto::Forker::Host)?;
        let mut st = self.lock();
        // Under the port's lock: the reactor may reap the child before this records it.
        match engine.spawn_direct(self, &cspec) {
            Ok(sp) => {
                self.0.child_pid.store(sp.ns_pid, Ordering::Relaxed);
                self.0.os_pid.store(sp.pid, Ordering::Relaxed);
                st.spawned = true;
                st.forked_here = true;
                st.pidfd = Some(sp.pidfd);
                if !st.lent {
                    self.watch_pidfd(&mut st, engine);
                }
                Ok(())
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                drop(st);
                let (spec, io) = crate::launcher::proto::SpawnSpec::from_child(cspec, current_dir());
                engine.spawn(self, spec, io)
            }
            Err(e) => {
                drop(st);
                self.on_spawn_failed(e.raw_os_error().unwrap_or(libc::EIO));
                Ok(())
            }
        }
    }

    /// The owner took `n` bytes of this port's data from its mailbox.
    pub(crate) fn input_taken(&self, n: usize) {
        let before = self.0.unread.fetch_sub(n, Ordering::SeqCst);
        if let Some(w) = self.0.settings.read_window {
            if before >= w && before - n < w && self.0.read_paused.swap(false, Ordering::SeqCst) {
                if let Ok(e) = engine::get() {
                    e.resume(self.0.id);
                }
            }
        }
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
        let pid = self.0.child_pid.load(Ordering::Relaxed);
        if let (true, Ok(e)) = (pid > 0, engine::get()) {
            // The launcher ladders the program, or what is left of its group; the engine keeps
            // the port until the exit is reported, for `exit_status`. A program that exited
            // alone needs nothing (one launcher request less per short-lived port). Without a
            // pid yet, `on_spawned` does this.
            if st.exit.is_none() || st.group_left {
                e.release(pid, self.0.settings.grace, st.forked_here);
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
        if st.forked_here {
            // The host's own child: signalled from here, as the launcher would (a reaped
            // leader's group only if members of it outlived it).
            let _ = match (&st.pidfd, group) {
                (_, true) if st.exit.is_none() || st.group_left => {
                    sys::signal::kill_group(self.0.os_pid.load(Ordering::Relaxed), signal)
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

/// The host's environment merged with `{:env, ...}`: a `None` or empty value unsets.
/// The program's environment: the host's with `changes` applied, as `KEY=value` strings,
/// each with room for the NUL that makes it a C string (no reallocation then).
fn merged_env(changes: &[(OsString, Option<OsString>)]) -> Vec<Vec<u8>> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    for (k, v) in changes {
        env.retain(|(x, _)| x != k);
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            env.push((k.clone(), v.clone()));
        }
    }
    env.into_iter()
        .map(|(k, v)| {
            let (k, v) = (k.as_bytes(), v.as_bytes());
            let mut kv = Vec::with_capacity(k.len() + v.len() + 2);
            kv.extend_from_slice(k);
            kv.push(b'=');
            kv.extend_from_slice(v);
            kv
        })
        .collect()
}

/// The host's working directory, which a program the launcher forks starts in.
fn current_dir() -> Vec<u8> {
    std::env::current_dir().map(|d| d.into_os_string().into_vec()).unwrap_or_default()
}

/// `System.find_executable/1`: the full path of `name` found on `PATH`, or `None`.
///
/// ```
/// let echo = beamport::find_executable("echo").unwrap();
/// assert!(echo.ends_with("echo"));
/// assert_eq!(beamport::find_executable("no-such-program-here"), None);
/// ```
pub fn find_executable(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return sys::fd::check_executable(&p).is_ok().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file() && sys::fd::check_executable(p).is_ok())
}
