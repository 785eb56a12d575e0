//! Port names and options (`PortSettings`), parsed and checked the way `open_port/2` does,
//! and the program's one typed spec (`Exec`) built from them.

use std::ffi::{CString, OsString};
use std::fmt;
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::framing::{Framing, PacketSize};
use crate::port::OpenError;
use crate::sys;
use crate::sys::child::{Exec, Layout};

/// What a port runs: the first argument of `Port.open/2`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Name, Opt, Port};
/// let me = process::current();
/// let wait = Duration::from_secs(5);
/// let via_shell = Name::spawn("echo $((6 * 7))"); // the shell expands it
/// assert!(matches!(&via_shell, Name::Spawn(cmd) if cmd.starts_with("echo")));
/// let port = Port::open(via_shell, [Opt::Binary]).unwrap();
/// let msg = me.receive_timeout(wait).unwrap().expect("data");
/// assert_eq!(msg.data().unwrap().as_str(), Some("42\n"));
/// # let _ = port.close();
///
/// let echo = beamport::find_executable("echo").unwrap();
/// let no_shell = Name::executable(echo); // arguments are passed as they are
/// let port = Port::open(no_shell, [Opt::Binary, Opt::args(["$((6 * 7))"])]).unwrap();
/// let msg = me.receive_timeout(wait).unwrap().expect("data");
/// assert_eq!(msg.data().unwrap().as_str(), Some("$((6 * 7))\n"));
/// # let _ = port.close();
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Name {
    /// `{:spawn, command}`: run through `/bin/sh -c "exec command"`, as OTP does, so `a; b`
    /// runs only `a` (see [`Name::spawn`]).
    Spawn(String),
    /// `{:spawn_executable, path}`: run `path` directly, with `Opt::Args`/`Opt::Arg0`.
    Executable(PathBuf),
}

impl Name {
    /// `{:spawn, command}`: `/bin/sh -c "exec command"`, as OTP runs it. The shell searches
    /// `PATH` and expands quotes, variables, globs, redirections and pipes.
    ///
    /// # Caveats
    ///
    /// Because of the `exec` OTP puts in front, the shell is replaced by the first command:
    ///
    /// - `a; b` (or `a && b`) runs only `a`, and the port ends when `a` does; to run a list of
    ///   commands, spawn `sh -c 'a; b'`;
    /// - a shell builtin or `VAR=value` as the first word fails with status 127 (`exit 3`,
    ///   `cd /tmp && pwd`, `FOO=1 env`): start with `env FOO=1 …` or `sh -c '…'` instead.
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Message, Name, Opt, Port, PortMsg};
    /// assert_eq!(format!("{:?}", Name::spawn("cat")), "{:spawn, \"cat\"}");
    ///
    /// let me = process::current();
    /// let output = |cmd: &str| {
    ///     let port = Port::open(Name::spawn(cmd), [Opt::Binary, Opt::ExitStatus]).unwrap();
    ///     let mut out = Vec::new();
    ///     loop {
    ///         match me.receive_timeout(Duration::from_secs(5)).unwrap().expect("a message") {
    ///             Message::Port(p, PortMsg::Data(d)) if p == port => out.extend_from_slice(d.bytes()),
    ///             Message::Port(p, PortMsg::ExitStatus(_)) if p == port => return out,
    ///             other => panic!("{other:?}"),
    ///         }
    ///     }
    /// };
    /// assert_eq!(output("echo a; echo b"), b"a\n"); // `exec echo a; echo b`: only `a`
    /// assert_eq!(output("sh -c 'echo a; echo b'"), b"a\nb\n");
    /// ```
    pub fn spawn(command: impl Into<String>) -> Name {
        Name::Spawn(command.into())
    }
    /// `{:spawn_executable, path}`.
    ///
    /// ```
    /// let n = beamport::Name::executable("/bin/echo");
    /// assert_eq!(format!("{n:?}"), "{:spawn_executable, \"/bin/echo\"}");
    /// ```
    pub fn executable(path: impl Into<PathBuf>) -> Name {
        Name::Executable(path.into())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Spawn(c) => write!(f, "{{:spawn, {c:?}}}"),
            Name::Executable(p) => write!(f, "{{:spawn_executable, {:?}}}", p.to_string_lossy()),
        }
    }
}

/// One port option: an element of `Port.open/2`'s settings list.
///
/// Options apply left to right and later ones override earlier ones, as in OTP. Options can
/// also be parsed from Elixir syntax:
///
/// ```
/// use beamport::Opt;
/// let o: Opt = "{:packet, 4}".parse().unwrap();
/// assert_eq!(o, Opt::Packet(4));
/// assert_eq!("{:packet_size, 1048576}".parse::<Opt>().unwrap(), Opt::PacketSize(Some(1 << 20)));
/// assert_eq!("{:packet_size, 0}".parse::<Opt>().unwrap(), Opt::PacketSize(None)); // as gen_tcp
/// assert_eq!("exit_status".parse::<Opt>().unwrap(), Opt::ExitStatus);
/// assert!("{:packet, 3}".parse::<Opt>().is_err());
/// assert!(":bogus".parse::<Opt>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Opt {
    /// `:binary`: data comes as binaries (iex prints strings) instead of lists.
    Binary,
    /// `:stream` (the default): no framing.
    Stream,
    /// `{:packet, n}`, n ∈ {1, 2, 4}: a big-endian length header both ways.
    Packet(u8),
    /// `{:line, l}`: input split into lines of at most `l` bytes.
    Line(usize),
    /// `{:cd, dir}`.
    Cd(PathBuf),
    /// `{:env, [{k, v}]}`: `None` (Elixir's `false`) or an empty value unsets `k`.
    Env(Vec<(OsString, Option<OsString>)>),
    /// `{:args, [..]}` (`spawn_executable` only).
    Args(Vec<OsString>),
    /// `{:arg0, a}` (`spawn_executable` only).
    Arg0(OsString),
    /// `:exit_status`: send `{:exit_status, n}` when the program ends.
    ExitStatus,
    /// `:use_stdio` (the default): the program talks on fds 0 and 1.
    UseStdio,
    /// `:nouse_stdio`: the program reads fd 3 and writes fd 4.
    NoUseStdio,
    /// `:stderr_to_stdout`.
    StderrToStdout,
    /// `:in`: input only.
    In,
    /// `:out`: output only.
    Out,
    /// `:eof`: keep the port open at EOF and send `:eof`.
    Eof,
    /// `:hide` (Windows only; accepted).
    Hide,
    /// `{:parallelism, b}` (a scheduler hint on the BEAM; accepted and reported).
    Parallelism(bool),
    /// `{:busy_limits_port, {low, high}}`, or `None` for `:disabled` (never busy).
    BusyLimitsPort(Option<(usize, usize)>),
    /// `{:busy_limits_msgq, {low, high}}`, or `None` for `:disabled`: checked as OTP checks it,
    /// then accepted with no effect. OTP limits a port's *signal queue*, the commands sent to
    /// it and not yet executed; a beamport command is executed by its sender, under the port's
    /// lock, so there is no such queue. Senders are held back by the output queue's limits
    /// ([`Opt::BusyLimitsPort`]).
    BusyLimitsMsgq(Option<(usize, usize)>),
    /// beamport: stop reading the program's output while more than this many bytes of this
    /// port's data wait, untaken, in the owner's mailbox. Each message counts its data and a
    /// fixed overhead (the size of a [`Message`](crate::Message)), so that empty packets or
    /// lines fill the window too. Frames go out until one fills the window; the rest of that
    /// read waits in the port until the owner takes messages. `None`: unbounded, as OTP.
    ReadWindow(Option<usize>),
    /// `{:packet_size, n}` (gen_tcp's option, for ports): the largest packet `{:packet, 4}`
    /// accepts from the program, [`DEFAULT_PACKET_SIZE`] (64 MiB) unless told. A header that
    /// announces more ends the port with reason `:emsgsize` as soon as it is read, before any
    /// of its body is (gen_tcp's socket closes with `{:tcp_error, socket, :emsgsize}`). `None`
    /// (`{:packet_size, 0}` or `{:packet_size, :infinity}`): no limit, as OTP's spawn ports,
    /// which buffer whatever the header announces, up to 4 GiB. `{:line, l}` needs no such
    /// bound: a line longer than `l` comes in chunks of `l` bytes.
    PacketSize(Option<usize>),
    /// beamport: the kill ladder's grace periods after the port is gone: SIGTERM to the
    /// program's group after the first, SIGKILL after the second.
    Grace(Duration, Duration),
    /// beamport: how long an owner's receive, waiting for this port's reply, keeps polling
    /// before it sleeps (as the BEAM's schedulers busy-wait, `+sbwt`). Waking a sleeping
    /// thread on another CPU costs tens of µs on virtual machines; a reply that comes within
    /// the spin costs none. Spinning is adaptive: a thread whose replies keep missing the spin
    /// stops spinning for a while; and it only happens with more than one CPU. `ZERO` turns
    /// it off.
    SpinWait(Duration),
}

/// The default read window: 1 MiB of untaken data per port (see [`Opt::ReadWindow`]).
///
/// ```
/// use beamport::{Name, Opt, Port, DEFAULT_READ_WINDOW};
///
/// assert_eq!(DEFAULT_READ_WINDOW, 1 << 20);
/// // A consumer that takes its data in big gulps can let more wait:
/// let port = Port::open(Name::spawn("cat"), [Opt::ReadWindow(Some(4 * DEFAULT_READ_WINDOW))]).unwrap();
/// port.close().unwrap();
/// ```
pub const DEFAULT_READ_WINDOW: usize = 1 << 20;
/// The default largest packet a `{:packet, 4}` port accepts from its program: 64 MiB (see
/// [`Opt::PacketSize`]).
///
/// ```
/// use std::time::Duration;
/// use beamport::{process, Message, Name, Opt, Port, Reason, DEFAULT_PACKET_SIZE};
///
/// assert_eq!(DEFAULT_PACKET_SIZE, 64 << 20);
/// // A program that announces a 2 GiB packet: the port ends at its header.
/// let me = process::current();
/// me.trap_exit(true);
/// let liar = r#"sh -c "printf '\177\377\377\377'; exec cat /dev/zero""#;
/// let port = Port::open(Name::spawn(liar), [Opt::Packet(4)]).unwrap();
/// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().expect("exit signal");
/// assert!(matches!(msg, Message::Exit(_, reason) if reason == Reason::atom("emsgsize")));
/// // Bigger packets are let through by a bigger packet size:
/// let big = Port::open(Name::spawn("cat"), [Opt::Packet(4), Opt::PacketSize(Some(1 << 30))]).unwrap();
/// big.close().unwrap();
/// # me.trap_exit(false);
/// ```
pub const DEFAULT_PACKET_SIZE: usize = 64 << 20;
/// The default spin of an owner waiting for its port's reply: 50 µs (see [`Opt::SpinWait`]).
///
/// ```
/// use std::time::Duration;
/// use beamport::{Name, Opt, Port, DEFAULT_SPIN_WAIT};
///
/// assert_eq!(DEFAULT_SPIN_WAIT, Duration::from_micros(50));
/// // A host sharing its CPUs with busier work can turn the spin off:
/// let port = Port::open(Name::spawn("cat"), [Opt::SpinWait(Duration::ZERO)]).unwrap();
/// port.close().unwrap();
/// ```
pub const DEFAULT_SPIN_WAIT: Duration = Duration::from_micros(50);
/// The default kill ladder: SIGTERM 5 s after the port is gone, SIGKILL 2 s later (see
/// [`Opt::Grace`]).
///
/// ```
/// use std::time::Duration;
/// use beamport::{Name, Opt, Port, DEFAULT_GRACE};
///
/// assert_eq!(DEFAULT_GRACE, (Duration::from_secs(5), Duration::from_secs(2)));
/// // A program that ignores EOF gets SIGTERM 100 ms after its port closes, SIGKILL as before:
/// let port = Port::open(Name::spawn("sleep 60"), [Opt::Grace(Duration::from_millis(100), DEFAULT_GRACE.1)]).unwrap();
/// port.close().unwrap();
/// ```
pub const DEFAULT_GRACE: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(2));

/// Options after parsing and checking: what the port core keeps for the port's life.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub binary: bool,
    pub framing: Framing,
    pub exit_status: bool,
    pub reads: bool,
    pub writes: bool,
    pub eof: bool,
    pub parallelism: bool,
    pub busy: Option<(usize, usize)>,
    pub read_window: Option<usize>,
    pub packet_size: Option<usize>,
    pub spin_wait: Duration,
}

/// The options that only start the program: used once, by `Port::open`, and not kept.
#[derive(Clone, Debug)]
pub(crate) struct SpawnOptions {
    pub cd: Option<PathBuf>,
    pub env: Vec<(OsString, Option<OsString>)>,
    pub args: Option<Vec<OsString>>,
    pub arg0: Option<OsString>,
    pub nouse_stdio: bool,
    pub stderr_to_stdout: bool,
    pub grace: (Duration, Duration),
}

fn bad(what: impl Into<String>) -> OpenError {
    OpenError::Badarg { what: what.into() }
}

fn limits(l: Option<(usize, usize)>, name: &str) -> Result<Option<(usize, usize)>, OpenError> {
    match l {
        None => Ok(None),
        Some((0, _)) | Some((_, 0)) => Err(bad(format!("{{:{name}, {l:?}}}: limits must be ≥ 1"))),
        // OTP accepts low > high and makes low = high.
        Some((low, high)) => Ok(Some((low.min(high), high))),
    }
}

impl Settings {
    /// Checks `opts` for a port named `name`, left to right, as `open_port/2` does.
    pub(crate) fn parse(name: &Name, opts: &[Opt]) -> Result<(Settings, SpawnOptions), OpenError> {
        let mut p = SpawnOptions {
            cd: None,
            env: Vec::new(),
            args: None,
            arg0: None,
            nouse_stdio: false,
            stderr_to_stdout: false,
            grace: DEFAULT_GRACE,
        };
        let mut s = Settings {
            binary: false,
            framing: Framing::Stream,
            exit_status: false,
            reads: false,
            writes: false,
            eof: false,
            parallelism: false,
            busy: Some((4096, 8192)),
            read_window: Some(DEFAULT_READ_WINDOW),
            packet_size: Some(DEFAULT_PACKET_SIZE),
            spin_wait: DEFAULT_SPIN_WAIT,
        };
        let mut line = None;
        for o in opts {
            match o {
                Opt::Binary => s.binary = true,
                Opt::Stream => s.framing = Framing::Stream,
                Opt::Packet(n) => {
                    let p =
                        PacketSize::try_from(*n).map_err(|_| bad(format!("{{:packet, {n}}}: must be 1, 2 or 4")))?;
                    s.framing = Framing::Packet(p);
                }
                Opt::Line(l) => {
                    let l = NonZeroUsize::new(*l).ok_or_else(|| bad("{:line, 0}: the length must be ≥ 1"))?;
                    line = Some(l);
                }
                Opt::Cd(d) => p.cd = Some(d.clone()),
                Opt::Env(e) => {
                    for (k, _) in e {
                        if k.to_string_lossy().contains('=') {
                            return Err(bad(format!("{{:env, ..}}: variable name {k:?} contains '='")));
                        }
                    }
                    p.env = e.clone();
                }
                Opt::Args(a) => p.args = Some(a.clone()),
                Opt::Arg0(a) => p.arg0 = Some(a.clone()),
                Opt::ExitStatus => s.exit_status = true,
                Opt::UseStdio => p.nouse_stdio = false,
                Opt::NoUseStdio => p.nouse_stdio = true,
                Opt::StderrToStdout => p.stderr_to_stdout = true,
                Opt::In => s.reads = true,
                Opt::Out => s.writes = true,
                Opt::Eof => s.eof = true,
                Opt::Hide => {}
                Opt::Parallelism(b) => s.parallelism = *b,
                Opt::BusyLimitsPort(l) => s.busy = limits(*l, "busy_limits_port")?,
                Opt::BusyLimitsMsgq(l) => {
                    limits(*l, "busy_limits_msgq")?;
                }
                Opt::ReadWindow(w) => {
                    if *w == Some(0) {
                        return Err(bad("{:read_window, 0}: must be ≥ 1 or :infinity"));
                    }
                    s.read_window = *w;
                }
                Opt::PacketSize(n) => {
                    if *n == Some(0) {
                        return Err(bad("{:packet_size, 0} means no limit: Opt::PacketSize(None)"));
                    }
                    s.packet_size = *n;
                }
                Opt::Grace(a, b) => p.grace = (*a, *b),
                Opt::SpinWait(d) => s.spin_wait = *d,
            }
        }
        if !s.reads && !s.writes {
            s.reads = true;
            s.writes = true;
        }
        if let Some(l) = line {
            if matches!(s.framing, Framing::Packet(_)) {
                return Err(bad("{:line, _} cannot be combined with {:packet, _}"));
            }
            s.framing = Framing::Line(l);
        }
        if p.stderr_to_stdout && p.nouse_stdio {
            return Err(bad(":stderr_to_stdout cannot be combined with :nouse_stdio"));
        }
        if !matches!(name, Name::Executable(_)) && (p.args.is_some() || p.arg0.is_some()) {
            return Err(bad("{:args, _} and {:arg0, _} need {:spawn_executable, path}"));
        }
        Ok((s, p))
    }
}

impl FromStr for Opt {
    type Err = OpenError;

    /// Parses one option in Elixir or Erlang syntax: `:binary`, `binary`, `{:packet, 4}`,
    /// `{:line, 80}`, `{:cd, "/tmp"}`, `{:arg0, "x"}`, `{:parallelism, true}`,
    /// `{:busy_limits_port, {4096, 8192}}` or `{:busy_limits_port, :disabled}`,
    /// `{:read_window, 65536}` or `{:read_window, :infinity}`, `{:packet_size, 1048576}` or
    /// `{:packet_size, 0}` (gen_tcp's "no limit", as `:infinity`), `{:spin_wait, 20}` (µs). `args`
    /// and `env` take lists and are built in Rust instead.
    fn from_str(s: &str) -> Result<Opt, OpenError> {
        let t = s.trim();
        let atom = |x: &str| x.trim().trim_start_matches(':').to_string();
        if let Some(inner) = t.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
            let (k, v) = inner.split_once(',').ok_or_else(|| bad(format!("unknown option {t}")))?;
            let (k, v) = (atom(k), v.trim());
            let int = || v.parse::<usize>().map_err(|_| bad(format!("{t}: {v} is not an integer")));
            let string = || {
                v.strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("{t}: {v} is not a string")))
            };
            let pair = |v: &str| -> Result<Option<(usize, usize)>, OpenError> {
                if atom(v) == "disabled" {
                    return Ok(None);
                }
                let p = v
                    .strip_prefix('{')
                    .and_then(|x| x.strip_suffix('}'))
                    .ok_or_else(|| bad(format!("{t}: bad limits")))?;
                let (a, b) = p.split_once(',').ok_or_else(|| bad(format!("{t}: bad limits")))?;
                match (a.trim().parse(), b.trim().parse()) {
                    (Ok(a), Ok(b)) => Ok(Some((a, b))),
                    _ => Err(bad(format!("{t}: bad limits"))),
                }
            };
            let opt = match k.as_str() {
                "packet" => {
                    let n = int()?;
                    if ![1, 2, 4].contains(&n) {
                        return Err(bad(format!("{t}: the packet size must be 1, 2 or 4")));
                    }
                    Opt::Packet(n as u8)
                }
                "line" => match int()? {
                    0 => return Err(bad(format!("{t}: the line length must be ≥ 1"))),
                    l => Opt::Line(l),
                },
                "cd" => Opt::Cd(string()?.into()),
                "arg0" => Opt::Arg0(string()?.into()),
                "parallelism" => match atom(v).as_str() {
                    "true" => Opt::Parallelism(true),
                    "false" => Opt::Parallelism(false),
                    _ => return Err(bad(format!("{t}: expected true or false"))),
                },
                "busy_limits_port" => Opt::BusyLimitsPort(pair(v)?),
                "busy_limits_msgq" => Opt::BusyLimitsMsgq(pair(v)?),
                "read_window" if atom(v) == "infinity" => Opt::ReadWindow(None),
                "read_window" => Opt::ReadWindow(Some(int()?)),
                "packet_size" if atom(v) == "infinity" => Opt::PacketSize(None),
                "packet_size" => Opt::PacketSize(Some(int()?).filter(|&n| n > 0)),
                "spin_wait" => Opt::SpinWait(Duration::from_micros(int()? as u64)),
                _ => return Err(bad(format!("unknown option {t}"))),
            };
            return Ok(opt);
        }
        Ok(match atom(t).as_str() {
            "binary" => Opt::Binary,
            "stream" => Opt::Stream,
            "exit_status" => Opt::ExitStatus,
            "use_stdio" => Opt::UseStdio,
            "nouse_stdio" => Opt::NoUseStdio,
            "stderr_to_stdout" => Opt::StderrToStdout,
            "in" => Opt::In,
            "out" => Opt::Out,
            "eof" => Opt::Eof,
            "hide" => Opt::Hide,
            "line" => Opt::Line(512),
            _ => return Err(bad(format!("unknown option {t}"))),
        })
    }
}

impl Opt {
    /// `{:args, [..]}` from anything that converts into strings.
    ///
    /// ```
    /// let o = beamport::Opt::args(["hello world"]);
    /// assert_eq!(o, beamport::Opt::Args(vec!["hello world".into()]));
    /// ```
    pub fn args<I, S>(args: I) -> Opt
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Opt::Args(args.into_iter().map(Into::into).collect())
    }

    /// `{:env, [..]}` from `(name, value)` pairs; a `None` value unsets the variable.
    ///
    /// ```
    /// let o = beamport::Opt::env([("A", Some("1")), ("B", None)]);
    /// assert!(matches!(o, beamport::Opt::Env(v) if v.len() == 2));
    /// ```
    pub fn env<I, K, V>(vars: I) -> Opt
    where
        I: IntoIterator<Item = (K, Option<V>)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Opt::Env(vars.into_iter().map(|(k, v)| (k.into(), v.map(Into::into))).collect())
    }
}

/// The program's one typed spec, from the port's name and options, and the port's name as
/// `Port.info/1` reports it. `{:spawn, cmd}` runs `/bin/sh -c "exec cmd"`, as OTP does.
pub(super) fn child_spec(name: &Name, settings: &Settings, spawn: &SpawnOptions) -> Result<(Exec, String), OpenError> {
    let nul = |s: &[u8]| OpenError::Badarg { what: format!("NUL byte in {:?}", String::from_utf8_lossy(s)) };
    let c = |b: Vec<u8>| CString::new(b).map_err(|e| nul(&e.into_vec()));
    let mut exec_fd = None;
    let (program, argv, label) = match name {
        Name::Spawn(cmd) => {
            if cmd.trim().is_empty() {
                return Err(OpenError::Badarg { what: "{:spawn, \"\"}: empty command".into() });
            }
            let argv = vec![c(b"sh".to_vec())?, c(b"-c".to_vec())?, c(format!("exec {cmd}").into_bytes())?];
            (c(b"/bin/sh".to_vec())?, argv, cmd.clone())
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
            if in_host_view(path) {
                exec_fd = Some(sys::fd::open_for_exec(path).map_err(OpenError::system)?);
            }
            let p = path.as_os_str().as_bytes().to_vec();
            let mut argv = vec![c(spawn.arg0.as_ref().map_or(p.clone(), |a| a.as_bytes().to_vec()))?];
            for a in spawn.args.iter().flatten() {
                argv.push(c(a.as_bytes().to_vec())?);
            }
            (c(p)?, argv, path.to_string_lossy().into_owned())
        }
    };
    let cd = match &spawn.cd {
        Some(d) => Some(c(d.as_os_str().as_bytes().to_vec())?),
        None => None,
    };
    // The inherited environment has no NUL (it is made of C strings): only what the options
    // add is checked.
    for (k, v) in &spawn.env {
        for s in [Some(k), v.as_ref()].into_iter().flatten() {
            if s.as_bytes().contains(&0) {
                return Err(nul(s.as_bytes()));
            }
        }
    }
    let envp = merged_env(&spawn.env).into_iter().map(c).collect::<Result<_, _>>()?;
    let exec = Exec {
        program,
        argv,
        envp,
        // The opener's own working directory, unless the launcher forks (see the driver).
        cwd: None,
        cd,
        layout: if spawn.nouse_stdio { Layout::Fd34 } else { Layout::Stdio },
        reads: settings.reads,
        writes: settings.writes,
        stderr_to_stdout: spawn.stderr_to_stdout,
        death_signal: None,
        exec_fd,
    };
    Ok((exec, label))
}

/// Whether an executable's path means something else to a port program than to the host, so
/// that the host opens the file and the program is exec'd from that fd: paths into `/proc`
/// (`/proc/<pid>/exe`, `/proc/self/…`) and its aliases `/dev/fd/N`, `/dev/stdin` …, whose
/// pids and "self" are the host's here and the program's own there (a port program has a
/// `/proc` of its PID namespace, or, in a user namespace, may not follow the host's
/// `/proc/<pid>/exe`). Every other path names the same file in both views (the launcher's
/// mount namespace is the host's, but for `/proc`), and is exec'd by its path, as OTP does:
/// a program's `comm` and a script's `$0` come from it.
fn in_host_view(path: &std::path::Path) -> bool {
    use std::path::Component;
    let mut parts = path.components().filter(|c| *c != Component::CurDir);
    if parts.next() != Some(Component::RootDir) {
        return false;
    }
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(a)), _) if a == "proc" => true,
        (Some(Component::Normal(a)), Some(Component::Normal(b))) if a == "dev" => {
            ["fd", "stdin", "stdout", "stderr"].iter().any(|x| b == *x)
        }
        _ => false,
    }
}

/// The program's environment: the host's merged with `{:env, ...}` (`changes`; a `None` or
/// empty value unsets), as `KEY=value` strings, each with room for the NUL that makes it a C
/// string (no reallocation then).
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

#[cfg(test)]
mod tests {
    use super::in_host_view;
    use std::path::Path;

    #[test]
    fn paths_into_proc_are_the_hosts() {
        for p in ["/proc/1/exe", "/proc/self/exe", "/./proc/42/cwd/prog", "/dev/fd/3", "/dev/stdin", "/dev/./fd/7"] {
            assert!(in_host_view(Path::new(p)), "{p}");
        }
        for p in ["/usr/bin/cat", "proc/1/exe", "./proc/1/exe", "/dev/null", "/devices/fd/3", "/procs/1/exe", "cat"] {
            assert!(!in_host_view(Path::new(p)), "{p}");
        }
    }
}
