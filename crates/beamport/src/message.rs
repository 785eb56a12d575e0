//! The values every layer passes around: pids, port handles, references, exit reasons and
//! statuses, and the messages a process finds in its mailbox. `Debug` output reads like iex,
//! so a trace can be compared line by line with the real VM.
//!
//! This is the lowest layer that knows what a port is: [`Port`] is a handle on any kind of
//! port, reached through the crate-private [`PortPeer`] trait, so that the process layer can
//! link to, monitor and signal ports without knowing how they are built.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

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
pub struct Pid(pub(crate) u64);

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#PID<0.{}.0>", self.0)
    }
}

/// A port: `#Port<0.N>`. Cheap to clone; equal when it names the same port. Like an Erlang
/// port identifier it stays valid after the port closes, and calls then fail with
/// [`PortError::Closed`](crate::PortError::Closed) (or return `None`).
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
pub struct Port(pub(crate) Arc<dyn PortPeer>);

impl PartialEq for Port {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}
impl Eq for Port {}
impl Hash for Port {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id().hash(state)
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Port<0.{}>", self.0.id())
    }
}

/// What the layers below the port core may ask of a port: the process layer links to it,
/// monitors it, sends it exit signals and tells it its owner ended; a mailbox gives back
/// read-window credit as its data is taken, and an owner's receive may poll it. The port
/// core implements it; a port on another node could too.
pub(crate) trait PortPeer: Send + Sync + 'static {
    /// The port's number, as in `#Port<0.N>`.
    fn id(&self) -> u64;
    /// For the port core, to reach its own type behind the handle.
    fn as_any(&self) -> &dyn Any;
    /// Whether the port has started closing (a hint, read without the port's lock).
    fn closing(&self) -> bool;
    /// The owner took `n` bytes of the port's data from its mailbox.
    fn data_taken(&self, n: usize);
    /// Links `pid` to the port; false if the port is not open.
    fn add_link(&self, pid: Pid) -> bool;
    /// Removes `pid`'s link.
    fn remove_link(&self, pid: Pid);
    /// Adds monitor `r` held by `by`; false if the port is not open.
    fn add_monitor(&self, r: Ref, by: Pid) -> bool;
    /// Removes monitor `r`.
    fn remove_monitor(&self, r: Ref);
    /// An exit signal reaches the port (`port`, this one's handle), from a linked process
    /// that ended (`link`) or from `exit/2`.
    fn exit_signal(&self, port: &Port, from: Pid, reason: Reason, link: bool);
    /// `owner` ended with `reason`: the port closes if it still owns it, linked or not.
    fn owner_exited(&self, port: &Port, owner: Pid, reason: &Reason);
    /// The owner's thread, about to sleep in a receive, polls the port itself until input
    /// comes, `wake` is signalled or `timeout` passes, then calls `stop_polling` and reads
    /// what came. False, at once, if the port cannot be polled so now (it then stops being
    /// the thread's poll candidate).
    fn poll_for_owner(
        &self,
        port: &Port,
        me: Pid,
        wake: BorrowedFd<'_>,
        timeout: Option<Duration>,
        stop_polling: &mut dyn FnMut(),
    ) -> bool;
}

/// A process or a port: what links, monitors and exit signals name.
///
/// # Examples
///
/// ```
/// use beamport::{process, Id, Name, Port};
/// let me = process::current();
/// let port = Port::open(Name::spawn("cat"), []).unwrap();
/// assert_eq!(Id::from(me.pid()), Id::Pid(me.pid()));
/// assert_eq!(Id::from(&port), Id::Port(port.clone()));
/// assert_eq!(format!("{:?}", Id::from(&port)), format!("{port:?}")); // #Port<0.N>
/// port.close().unwrap();
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Id {
    /// A process.
    Pid(Pid),
    /// A port.
    Port(Port),
}

impl From<Pid> for Id {
    fn from(p: Pid) -> Self {
        Id::Pid(p)
    }
}

impl From<Port> for Id {
    fn from(p: Port) -> Self {
        Id::Port(p)
    }
}

impl From<&Port> for Id {
    fn from(p: &Port) -> Self {
        Id::Port(p.clone())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Pid(p) => p.fmt(f),
            Id::Port(p) => p.fmt(f),
        }
    }
}

/// A monitor reference, `#Reference<0.0.0.N>`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Message};
/// let me = process::current();
/// let pid = process::spawn(|p| {
///     let _ = p.receive(); // waits for a message
/// });
/// let r = process::monitor(pid);
/// assert!(format!("{r:?}").starts_with("#Reference<0.0.0."));
/// assert_ne!(process::monitor(pid), r); // every monitor has its own reference
/// process::send(pid, "stop");
/// match me.receive_timeout(Duration::from_secs(5)).unwrap() {
///     Some(Message::Down(r2, _, _)) => assert_eq!(r2, r),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref(pub(crate) u64);

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Reference<0.0.0.{}>", self.0)
    }
}

/// Why a process or a port ended: the reason an exit signal carries.
///
/// ```
/// use beamport::Reason;
/// assert_eq!(format!("{:?}", Reason::Normal), ":normal");
/// assert_eq!(format!("{:?}", Reason::atom("badsig")), ":badsig");
/// assert_eq!(Reason::atom("normal"), Reason::Normal);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `:normal`: a normal end; ignored by linked processes that do not trap exits.
    Normal,
    /// `:kill`: sent with [`crate::process::exit`], ends the target untrappably.
    Kill,
    /// `:killed`: what links see when a process or port was ended by `:kill`.
    Killed,
    /// `:noproc`: the monitored or linked item did not exist.
    Noproc,
    /// Any other atom: `:badsig`, `:epipe`, `:einval`, `:ebadf`, or a user's own.
    Atom(Arc<str>),
    /// A process's closure panicked; the panic message.
    Panic(Arc<str>),
}

impl Reason {
    /// The reason named by an atom; `"normal"`, `"kill"`, `"killed"` and `"noproc"` map to
    /// their own variants.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::Reason;
    /// assert_eq!(Reason::atom("kill"), Reason::Kill);
    /// assert_eq!(Reason::atom("noproc"), Reason::Noproc);
    /// assert_eq!(Reason::atom("epipe"), Reason::Atom("epipe".into()));
    /// assert_eq!(Reason::atom("epipe").to_string(), ":epipe");
    /// ```
    pub fn atom(name: &str) -> Reason {
        match name {
            "normal" => Reason::Normal,
            "kill" => Reason::Kill,
            "killed" => Reason::Killed,
            "noproc" => Reason::Noproc,
            other => Reason::Atom(other.into()),
        }
    }

    /// Whether this is `:normal`.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::Reason;
    /// assert!(Reason::Normal.is_normal());
    /// assert!(Reason::atom("normal").is_normal());
    /// assert!(!Reason::Killed.is_normal());
    /// ```
    pub fn is_normal(&self) -> bool {
        matches!(self, Reason::Normal)
    }

    /// The reason linked items see: `:kill` becomes `:killed`.
    pub(crate) fn propagated(&self) -> Reason {
        match self {
            Reason::Kill => Reason::Killed,
            r => r.clone(),
        }
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Normal => f.write_str(":normal"),
            Reason::Kill => f.write_str(":kill"),
            Reason::Killed => f.write_str(":killed"),
            Reason::Noproc => f.write_str(":noproc"),
            Reason::Atom(a) => write!(f, ":{a}"),
            Reason::Panic(m) => write!(f, "{{:panic, {m:?}}}"),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// How a port's program ended, as `{:exit_status, n}` reports it.
///
/// ```
/// use beamport::ExitStatus;
/// let st = ExitStatus::from_raw(9); // killed by SIGKILL
/// assert_eq!(st.code(), 137);       // OTP's 128 + N
/// assert_eq!(st.signal(), Some(9));
/// assert_eq!(format!("{st:?}"), "{:exit_status, 137}");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus(i32);

impl ExitStatus {
    /// From a raw `waitpid` status.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::ExitStatus;
    /// let st = ExitStatus::from_raw(3 << 8); // exit(3)
    /// assert_eq!(st.code(), 3);
    /// assert_eq!(format!("{st:?}"), "{:exit_status, 3}");
    /// ```
    pub fn from_raw(raw: i32) -> Self {
        ExitStatus(raw)
    }
    /// The raw `waitpid` status.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::ExitStatus;
    /// assert_eq!(ExitStatus::from_raw(3 << 8).raw(), 0x300);
    /// assert_eq!(ExitStatus::from_raw(15).raw(), 15); // SIGTERM
    /// ```
    pub fn raw(&self) -> i32 {
        self.0
    }
    /// OTP's value: the exit code, or 128 + the signal number if a signal ended the program.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, ExitStatus, Message, Name, Opt, Port, PortMsg};
    /// assert_eq!(ExitStatus::from_raw(1 << 8).code(), 1);
    /// assert_eq!(ExitStatus::from_raw(15).code(), 143); // 128 + SIGTERM
    ///
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("sh -c 'exit 3'"), [Opt::ExitStatus]).unwrap();
    /// match me.receive_timeout(Duration::from_secs(5)).unwrap() {
    ///     Some(Message::Port(_, PortMsg::ExitStatus(st))) => assert_eq!(st.code(), 3),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(!port.is_open()); // closed at EOF
    /// ```
    pub fn code(&self) -> i32 {
        match crate::sys::signal::decode_status(self.0) {
            Ok(code) => code,
            Err((sig, _)) => 128 + sig,
        }
    }
    /// The signal that ended the program, if one did.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::ExitStatus;
    /// assert_eq!(ExitStatus::from_raw(9).signal(), Some(9)); // SIGKILL
    /// assert_eq!(ExitStatus::from_raw(1 << 8).signal(), None); // exit(1)
    /// ```
    pub fn signal(&self) -> Option<i32> {
        crate::sys::signal::decode_status(self.0).err().map(|(s, _)| s)
    }
    /// Whether the program dumped core.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::ExitStatus;
    /// let st = ExitStatus::from_raw(11 | 0x80); // SIGSEGV, core dumped
    /// assert!(st.core_dumped());
    /// assert_eq!((st.signal(), st.code()), (Some(11), 139));
    /// assert!(!ExitStatus::from_raw(11).core_dumped());
    /// ```
    pub fn core_dumped(&self) -> bool {
        matches!(crate::sys::signal::decode_status(self.0), Err((_, true)))
    }
    /// Whether the program exited with code 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::ExitStatus;
    /// assert!(ExitStatus::from_raw(0).success());
    /// assert!(!ExitStatus::from_raw(1 << 8).success()); // exit(1)
    /// assert!(!ExitStatus::from_raw(9).success()); // SIGKILL
    /// ```
    pub fn success(&self) -> bool {
        crate::sys::signal::decode_status(self.0) == Ok(0)
    }
}

impl fmt::Debug for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{:exit_status, {}}}", self.code())
    }
}

/// Bytes from a port, with how they were framed and how iex would print them.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Name, Opt, Port};
/// let me = process::current();
/// let port = Port::open(Name::spawn("printf 'a\\nbc'"), [Opt::Binary, Opt::Line(10)]).unwrap();
/// let mut lines = Vec::new();
/// while lines.len() < 2 {
///     let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("a line");
///     lines.push(msg.data().unwrap().clone());
/// }
/// assert_eq!(format!("{lines:?}"), r#"[{:eol, "a"}, {:noeol, "bc"}]"#);
/// assert_eq!((lines[0].eol(), lines[1].eol()), (Some(true), Some(false)));
/// # let _ = port.close();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Data {
    pub(crate) bytes: Bytes,
    pub(crate) line: Option<bool>,
    pub(crate) list: bool,
}

impl Data {
    /// The bytes (a whole packet, a line without its newline, or a stream chunk).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(2)]).unwrap();
    /// port.command(vec![1, 2, 3]).unwrap(); // cat echoes header and body: one packet back
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("a packet");
    /// assert_eq!(msg.data().unwrap().bytes().as_ref(), [1, 2, 3]);
    /// port.close().unwrap();
    /// ```
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// Takes the bytes out.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Message, Name, Opt, Port, PortMsg};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    /// port.command("hello").unwrap();
    /// match me.receive_timeout(Duration::from_secs(5)).unwrap() {
    ///     Some(Message::Port(_, PortMsg::Data(d))) => assert_eq!(d.into_bytes(), "hello"),
    ///     other => panic!("{other:?}"),
    /// }
    /// port.close().unwrap();
    /// ```
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
    /// In `{:line, L}` mode: `Some(true)` for `{:eol, line}`, `Some(false)` for `{:noeol, part}`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let wait = Duration::from_secs(5);
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Line(4)]).unwrap();
    /// port.command("abcdef\n").unwrap(); // longer than 4: split, then the rest ends the line
    /// let first = me.receive_timeout(wait).unwrap().expect("a line").data().unwrap().clone();
    /// assert_eq!((first.as_str(), first.eol()), (Some("abcd"), Some(false)));
    /// let rest = me.receive_timeout(wait).unwrap().expect("a line").data().unwrap().clone();
    /// assert_eq!((rest.as_str(), rest.eol()), (Some("ef"), Some(true)));
    /// port.close().unwrap();
    ///
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap(); // stream mode
    /// port.command("abc\n").unwrap();
    /// let data = me.receive_timeout(wait).unwrap().expect("data").data().unwrap().clone();
    /// assert_eq!(data.eol(), None);
    /// port.close().unwrap();
    /// ```
    pub fn eol(&self) -> Option<bool> {
        self.line
    }
    /// Whether the port is in list mode (no `:binary`), so iex would print a charlist.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let wait = Duration::from_secs(5);
    /// let list = Port::open(Name::spawn("cat"), []).unwrap();
    /// list.command("hi").unwrap();
    /// let d = me.receive_timeout(wait).unwrap().expect("data").data().unwrap().clone();
    /// assert!(d.is_list());
    /// assert_eq!(format!("{d:?}"), "'hi'");
    /// list.close().unwrap();
    ///
    /// let binary = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    /// binary.command("hi").unwrap();
    /// let d = me.receive_timeout(wait).unwrap().expect("data").data().unwrap().clone();
    /// assert!(!d.is_list());
    /// assert_eq!(format!("{d:?}"), "\"hi\"");
    /// binary.close().unwrap();
    /// ```
    pub fn is_list(&self) -> bool {
        self.list
    }
    /// The bytes as text, if they are UTF-8.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port};
    /// let me = process::current();
    /// let wait = Duration::from_secs(5);
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(1)]).unwrap();
    /// port.command("héllo").unwrap();
    /// let d = me.receive_timeout(wait).unwrap().expect("a packet").data().unwrap().clone();
    /// assert_eq!(d.as_str(), Some("héllo"));
    /// port.command(vec![0xff, 0xfe]).unwrap();
    /// let d = me.receive_timeout(wait).unwrap().expect("a packet").data().unwrap().clone();
    /// assert_eq!(d.as_str(), None); // not UTF-8
    /// assert_eq!(format!("{d:?}"), "<<255, 254>>");
    /// port.close().unwrap();
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut body = String::new();
        if self.list {
            charlist(&self.bytes, &mut body);
        } else {
            binary(&self.bytes, &mut body);
        }
        match self.line {
            None => f.write_str(&body),
            Some(true) => write!(f, "{{:eol, {body}}}"),
            Some(false) => write!(f, "{{:noeol, {body}}}"),
        }
    }
}

/// iex's rendering of a binary: a string literal when printable, else `<<1, 2, 3>>`.
pub(crate) fn binary(b: &[u8], out: &mut String) {
    use fmt::Write;
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control() || "\n\r\t\x0b\x0c\x07\x08\x1b".contains(c)) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\x0b' => out.push_str("\\v"),
                    '\x0c' => out.push_str("\\f"),
                    '\x07' => out.push_str("\\a"),
                    '\x08' => out.push_str("\\b"),
                    '\x1b' => out.push_str("\\e"),
                    '#' => out.push('#'),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        _ => {
            out.push_str("<<");
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{x}");
            }
            out.push_str(">>");
        }
    }
}

/// iex's rendering of a charlist (Elixir 1.5): `'hello'` when printable, else `[104, 0]`.
pub(crate) fn charlist(b: &[u8], out: &mut String) {
    use fmt::Write;
    if b.iter().all(|&c| (0x20..0x7f).contains(&c) || b"\n\r\t\x0b\x0c\x07\x08\x1b".contains(&c)) {
        out.push('\'');
        for &c in b {
            match c {
                b'\'' => out.push_str("\\'"),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                b'\x0b' => out.push_str("\\v"),
                b'\x0c' => out.push_str("\\f"),
                b'\x07' => out.push_str("\\a"),
                b'\x08' => out.push_str("\\b"),
                b'\x1b' => out.push_str("\\e"),
                c => out.push(c as char),
            }
        }
        out.push('\'');
    } else {
        out.push('[');
        for (i, x) in b.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{x}");
        }
        out.push(']');
    }
}

/// What a port sends its owner: the second element of `{port, ...}`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Message, Name, Opt, Port, PortMsg};
/// let me = process::current();
/// let opts = [Opt::Binary, Opt::ExitStatus, Opt::Eof];
/// let port = Port::open(Name::spawn("echo hi"), opts).unwrap();
/// let mut got = Vec::new();
/// while got.last() != Some(&PortMsg::Eof) {
///     match me.receive_timeout(Duration::from_secs(5)).unwrap() {
///         Some(Message::Port(p, m)) if p == port => got.push(m),
///         other => panic!("{other:?}"),
///     }
/// }
/// assert_eq!(format!("{got:?}"), r#"[{:data, "hi\n"}, {:exit_status, 0}, :eof]"#);
/// port.close().unwrap(); // with :eof the port stays open until closed
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortMsg {
    /// `{:data, data}`.
    Data(Data),
    /// `:closed`: the reply to a `{pid, :close}` message, once the output is flushed.
    Closed,
    /// `:connected`: the reply to `{pid, {:connect, new}}`, sent to the old owner.
    Connected,
    /// `{:exit_status, n}` (with the `:exit_status` option).
    ExitStatus(ExitStatus),
    /// `:eof` (with the `:eof` option).
    Eof,
}

impl fmt::Debug for PortMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortMsg::Data(d) => write!(f, "{{:data, {d:?}}}"),
            PortMsg::Closed => f.write_str(":closed"),
            PortMsg::Connected => f.write_str(":connected"),
            PortMsg::ExitStatus(s) => s.fmt(f),
            PortMsg::Eof => f.write_str(":eof"),
        }
    }
}

/// A user message sent with [`crate::process::send`]: any `Send + 'static` value.
///
/// # Examples
///
/// ```
/// use beamport::{process, Message};
/// let me = process::current();
/// process::send(me.pid(), String::from("hello"));
/// let Message::User(u) = me.receive().unwrap() else { panic!("not a user message") };
/// assert_eq!(format!("{u:?}"), "\"hello\""); // strings print as iex would
/// assert_eq!(u.downcast::<String>().unwrap(), "hello");
/// ```
pub struct UserMsg {
    pub(crate) value: Box<dyn Any + Send>,
    pub(crate) type_name: &'static str,
}

impl UserMsg {
    /// Takes the value out if it has type `T`, else gives the message back.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{process, Message};
    /// let me = process::current();
    /// process::send(me.pid(), (1u8, 'x'));
    /// let Message::User(u) = me.receive().unwrap() else { panic!("not a user message") };
    /// let u = u.downcast::<String>().unwrap_err(); // wrong type: the message comes back
    /// assert_eq!(u.downcast::<(u8, char)>().unwrap(), (1, 'x'));
    /// ```
    pub fn downcast<T: Any>(self) -> Result<T, UserMsg> {
        let UserMsg { value, type_name } = self;
        value.downcast::<T>().map(|b| *b).map_err(|value| UserMsg { value, type_name })
    }
    /// Borrows the value if it has type `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{process, Message};
    /// let me = process::current();
    /// process::send(me.pid(), 42u64);
    /// let Message::User(u) = me.receive().unwrap() else { panic!("not a user message") };
    /// assert_eq!(u.downcast_ref::<u64>(), Some(&42));
    /// assert_eq!(u.downcast_ref::<i32>(), None);
    /// ```
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.value.downcast_ref::<T>()
    }
}

impl fmt::Debug for UserMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.value.downcast_ref::<&str>() {
            return write!(f, "{s:?}");
        }
        if let Some(s) = self.value.downcast_ref::<String>() {
            return write!(f, "{s:?}");
        }
        write!(f, "#{}<...>", self.type_name)
    }
}

/// One message in a process's mailbox.
///
/// ```
/// use beamport::{Message, Reason, process};
/// let me = process::current();
/// process::send(me.pid(), "hi");
/// let msg = me.receive().unwrap();
/// assert_eq!(format!("{msg:?}"), "\"hi\"");
/// ```
#[non_exhaustive]
pub enum Message {
    /// `{port, msg}` from a port to its owner.
    Port(Port, PortMsg),
    /// `{:EXIT, from, reason}`: an exit signal, delivered as a message because the process
    /// traps exits.
    Exit(Id, Reason),
    /// `{:DOWN, ref, :process | :port, item, reason}`: a monitored item ended.
    Down(Ref, Id, Reason),
    /// A value sent with [`crate::process::send`].
    User(UserMsg),
}

impl Message {
    /// The port, if this is `{port, _}` or an exit/down from a port.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// port.command("hi").unwrap();
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("data");
    /// assert_eq!(msg.port(), Some(&port));
    /// port.close().unwrap();
    ///
    /// port.monitor(); // on a closed port: {:DOWN, ref, :port, port, :noproc} at once
    /// let down = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("down");
    /// assert_eq!(down.port(), Some(&port));
    ///
    /// process::send(me.pid(), "hi");
    /// assert_eq!(me.receive().unwrap().port(), None);
    /// ```
    pub fn port(&self) -> Option<&Port> {
        match self {
            Message::Port(p, _) | Message::Exit(Id::Port(p), _) | Message::Down(_, Id::Port(p), _) => Some(p),
            _ => None,
        }
    }

    /// The data of a `{port, {:data, d}}` message.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Opt, Port, Request};
    /// let me = process::current();
    /// let wait = Duration::from_secs(5);
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    /// port.command("hi").unwrap();
    /// let msg = me.receive_timeout(wait).unwrap().expect("data");
    /// assert_eq!(msg.data().unwrap().as_str(), Some("hi"));
    /// port.send(me.pid(), Request::Close);
    /// let closed = me.receive_timeout(wait).unwrap().expect(":closed");
    /// assert!(closed.data().is_none()); // {port, :closed} carries no data
    /// ```
    pub fn data(&self) -> Option<&Data> {
        match self {
            Message::Port(_, PortMsg::Data(d)) => Some(d),
            _ => None,
        }
    }

    /// Called when the owner takes the message from its mailbox.
    pub(crate) fn taken(&self) {
        if let Message::Port(p, PortMsg::Data(d)) = self {
            p.0.data_taken(d.bytes.len());
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Port(p, m) => write!(f, "{{{p:?}, {m:?}}}"),
            Message::Exit(from, r) => write!(f, "{{:EXIT, {from:?}, {r:?}}}"),
            Message::Down(r, Id::Port(p), reason) => write!(f, "{{:DOWN, {r:?}, :port, {p:?}, {reason:?}}}"),
            Message::Down(r, Id::Pid(p), reason) => write!(f, "{{:DOWN, {r:?}, :process, {p:?}, {reason:?}}}"),
            Message::User(u) => u.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: &[u8], list: bool, line: Option<bool>) -> String {
        format!("{:?}", Data { bytes: Bytes::copy_from_slice(b), list, line })
    }

    #[test]
    fn data_prints_like_iex() {
        assert_eq!(d(b"hello", false, None), "\"hello\"");
        assert_eq!(d(b"oops\n", false, None), "\"oops\\n\"");
        assert_eq!(d(&[1, 2, 255], false, None), "<<1, 2, 255>>");
        assert_eq!(d(b"hello", true, None), "'hello'");
        assert_eq!(d(&[104, 0], true, None), "[104, 0]");
        assert_eq!(d(b"abc", false, Some(true)), "{:eol, \"abc\"}");
        assert_eq!(d(b"ab", true, Some(false)), "{:noeol, 'ab'}");
        assert_eq!(d(b"", false, None), "\"\"");
    }
}
