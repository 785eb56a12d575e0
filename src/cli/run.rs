//! `beamport run [--grace D] [--watch W] -- PROG ARGS…`: the wrapper that Elixir's Port docs
//! suggest for programs that ignore their stdin ("Zombie processes"), done right.
//!
//! PROG runs as a beamport port: beamport's stdin goes to PROG's stdin and PROG's stdout to
//! beamport's stdout, byte for byte; PROG's stderr is inherited. beamport exits with PROG's
//! status (the exit code, or 128 + the signal), and nothing PROG started outlives it:
//!
//! - what `--watch` watches ends (stdin closes, the default; or beamport's parent dies) →
//!   PROG reads EOF; if it is still running after `--grace`, its process group gets SIGTERM,
//!   and SIGKILL after another `--grace`. With `--watch parent` or `none`, the end of stdin
//!   is only PROG's EOF (for cron, `nohup`, or `</dev/null`);
//! - SIGTERM, SIGINT or SIGHUP → the same ladder, starting with SIGTERM at once (a second
//!   signal moves to the next rung); a SIGHUP that beamport was started ignoring (`nohup`)
//!   stays ignored;
//! - PROG exits → what is left of its process group gets SIGTERM, then SIGKILL after
//!   `--grace`; anything that escaped the group (`setsid`, double forks) ends with beamport,
//!   through the launcher (see `docs/no-orphans.md`);
//! - beamport is SIGKILLed → the launcher, or the kernel when the launcher is PID 1 of its
//!   own PID namespace, ends the whole tree.
//!
//! From Elixir: `Port.open({:spawn_executable, beamport}, [:binary, :exit_status, args:
//! ["run", "--", prog | args]])`.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use beamport::process::{self, Pid};
use beamport::{ExitStatus, Id, Message, Name, OpenError, Opt, Port, PortMsg, Reason};

/// How often the process group is checked while waiting for it to empty.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// Exit code when PROG's status could not be learnt.
const UNKNOWN_STATUS: i32 = 1;

/// The least time the last rung waits for PROG's output to end after its SIGKILL, whatever
/// `--grace` says: its exit and its output's EOF reach beamport a moment after the signal
/// (with `--grace 0` the whole ladder would otherwise run, and give up, before they arrive).
/// As long as the launcher's wait between SIGTERM and SIGKILL when a host is gone.
const LAST_WAIT: Duration = Duration::from_millis(500);

/// How often beamport's parent is looked at where the kernel has no pidfds (before 5.3).
const PARENT_POLL: Duration = Duration::from_millis(250);

/// What ends PROG, besides signals to beamport and PROG's own exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Watch {
    /// The end of beamport's stdin: the BEAM closed the port, halted or died (OTP's own
    /// signal to a port program, and the Elixir docs' wrapper's).
    Stdin,
    /// The death of beamport's parent (for cron jobs, scripts, `</dev/null`): stdin is still
    /// passed to PROG, and its end is only PROG's EOF.
    Parent,
    /// Nothing: PROG runs until it exits or beamport is signalled (for `nohup`).
    None,
}

/// Arguments of `beamport run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long PROG gets after its input closes before SIGTERM, and after SIGTERM before
    /// SIGKILL: `500ms`, `2s`, `1.5` (seconds).
    #[arg(long, value_name = "D", default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,
    /// What ends PROG (after `--grace`, with SIGTERM, then SIGKILL): the end of stdin, the
    /// death of beamport's parent, or nothing but a signal to beamport.
    #[arg(long, value_name = "W", value_enum, default_value_t = Watch::Stdin)]
    pub watch: Watch,
    /// The program (looked up in PATH when it has no `/`) and its arguments.
    #[arg(value_name = "PROG ARGS", required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

/// Parses `500ms`, `2s`, `1m` or a plain number of seconds (`1.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        _ => return Err(format!("{s:?}: the unit must be ms, s or m")),
    };
    let n: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 2s, 1.5)"))?;
    Duration::try_from_secs_f64(n * scale).map_err(|e| format!("{s:?}: {e}"))
}

/// What the helper threads tell the owner loop.
#[derive(Debug)]
enum Event {
    /// beamport's stdin reached EOF (or failed).
    StdinClosed,
    /// beamport's parent died.
    ParentDied,
    /// beamport got SIGTERM, SIGINT or SIGHUP.
    Signal,
    /// PROG itself ended (its output may still be held open by what it started).
    ProgExited,
}

/// Runs `beamport run`; returns PROG's exit status as the process exit code.
pub fn run(args: Args) -> i32 {
    let (prog, prog_args) = args.command.split_first().expect("clap requires PROG");
    let Some(path) = resolve(prog) else {
        eprintln!("beamport run: {}: command not found", prog.to_string_lossy());
        return 127;
    };
    let me = process::current();
    me.trap_exit(true); // a port that dies (e.g. `epipe`) must not take the owner with it

    // Before anything can take long: the parent may die any time.
    let parent = if args.watch == Watch::Parent { Some(watch_parent(me.pid())) } else { None };
    if let Some(Err(e)) = &parent {
        eprintln!("beamport run: cannot watch the parent process: {e}");
        return 2;
    }
    if let Err(e) = forward_signals(me.pid()) {
        eprintln!("beamport run: cannot handle signals: {e}");
        return 2;
    }
    let opts = [
        Opt::Binary,
        Opt::ExitStatus,
        Opt::Eof,
        Opt::Arg0(prog.clone()),
        Opt::Args(prog_args.to_vec()),
        Opt::Grace(args.grace, args.grace),
    ];
    let port = match Port::open(Name::executable(&path), opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("beamport run: {e}");
            return match e {
                OpenError::Enoent { .. } => 127,
                _ => 126,
            };
        }
    };
    let pgid = port.os_pid().unwrap_or(-1);
    let exited = Arc::new(AtomicBool::new(false));
    let watching = watch_exit(pgid, me.pid(), exited.clone());
    let pump = port.clone();
    let owner = me.pid();
    thread::Builder::new()
        .name("beamport-run-stdin".into())
        .spawn(move || pump_stdin(&pump, owner, &exited))
        .expect("spawn the stdin thread");
    let mut r = Runner {
        me,
        port,
        pgid,
        grace: args.grace,
        watch: args.watch,
        watching,
        status: None,
        port_gone: None,
        output_done: false,
        exited: false,
        stdout_ok: true,
        rung: Rung::Running,
        next: None,
    };
    r.run()
}

/// PROG as given if it has a `/`, else its first match on PATH.
fn resolve(prog: &OsString) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if prog.as_bytes().contains(&b'/') {
        return Some(prog.into());
    }
    beamport::find_executable(prog.to_str()?)
}

/// Turns SIGTERM, SIGINT and SIGHUP into [`Event::Signal`] messages for `owner`; a SIGHUP that
/// this process was started ignoring (`nohup`) stays ignored.
fn forward_signals(owner: Pid) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut sigs = vec![SIGTERM, SIGINT];
    if !ignored_at_start(SIGHUP) {
        sigs.push(SIGHUP);
    }
    let mut signals = signal_hook::iterator::Signals::new(sigs)?;
    thread::Builder::new().name("beamport-run-signals".into()).spawn(move || {
        for _ in signals.forever() {
            process::send(owner, Event::Signal);
        }
    })?;
    Ok(())
}

/// Whether `sig` is ignored (`SIG_IGN`, inherited across `execve`), as `/proc/self/status`
/// says (`SigIgn`, a hexadecimal mask with bit `sig - 1`).
fn ignored_at_start(sig: i32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:")).map(str::trim);
    mask.and_then(|m| u64::from_str_radix(m, 16).ok()).is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

/// Sends `owner` [`Event::ParentDied`] when this process's parent dies: through a pidfd of the
/// parent, or by looking at `getppid()` every [`PARENT_POLL`] where pidfds are missing.
fn watch_parent(owner: Pid) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::process::{getppid, pidfd_open, PidfdFlags};
    let Some(parent) = getppid() else {
        // Pid 0: the parent is outside this PID namespace (e.g. a port's host forked us).
        return Err(io::Error::other("the parent is outside this process's PID namespace"));
    };
    let fd = match pidfd_open(parent, PidfdFlags::empty()) {
        Ok(fd) => Some(fd),
        Err(rustix::io::Errno::SRCH) => {
            process::send(owner, Event::ParentDied);
            return Ok(());
        }
        Err(_) => None,
    };
    // A parent that died before the pidfd was opened: the pidfd names the new parent.
    if getppid() != Some(parent) {
        process::send(owner, Event::ParentDied);
        return Ok(());
    }
    thread::Builder::new().name("beamport-run-parent".into()).spawn(move || {
        match fd {
            Some(fd) => loop {
                let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                match poll(&mut fds, None) {
                    Ok(n) if n > 0 => break,
                    Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return,
                }
            },
            None => {
                while getppid() == Some(parent) {
                    thread::sleep(PARENT_POLL);
                }
            }
        }
        process::send(owner, Event::ParentDied);
    })?;
    Ok(())
}

/// Watches PROG's exit through a pidfd, so that an exit is noticed even while something PROG
/// started keeps its output open (then the port sees no EOF, and with it no exit status).
/// False if pidfds are not available: the exit is then known only from the port's `:eof`.
fn watch_exit(os_pid: i32, owner: Pid, exited: Arc<AtomicBool>) -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let Some(pid) = rustix::process::Pid::from_raw(os_pid) else {
        return false;
    };
    let fd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => Some(fd),
        Err(rustix::io::Errno::SRCH) => None, // already gone
        Err(_) => return false,
    };
    let spawned = thread::Builder::new().name("beamport-run-exit".into()).spawn(move || {
        if let Some(fd) = fd {
            loop {
                let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                match poll(&mut fds, None) {
                    Ok(n) if n > 0 => break,
                    Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return, // cannot tell: rely on `:eof`
                }
            }
        }
        exited.store(true, Ordering::Release);
        process::send(owner, Event::ProgExited);
    });
    spawned.is_ok()
}

/// Copies beamport's stdin to the port, chunk by chunk as `read` returns them. Input that
/// arrives after PROG exited is dropped: writing it could only fail with `epipe`, which would
/// close the port before PROG's exit status comes.
fn pump_stdin(port: &Port, owner: Pid, exited: &AtomicBool) {
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if exited.load(Ordering::Acquire) {
                    continue;
                }
                if port.command(buf[..n].to_vec()).is_err() {
                    break; // the port is closed or its input is: nobody will read more
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    process::send(owner, Event::StdinClosed);
}

/// Where the ladder stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rung {
    /// Nothing sent.
    Running,
    /// PROG's input is closed; SIGTERM is due when the grace runs out.
    InputClosed,
    /// SIGTERM sent; SIGKILL is due when the grace runs out.
    Termed,
    /// SIGKILL sent; waiting a last grace for the output to end.
    Killed,
}

/// The owner loop's state.
struct Runner {
    me: process::Process,
    port: Port,
    /// PROG's process group, as the host's PID namespace numbers it.
    pgid: i32,
    grace: Duration,
    watch: Watch,
    /// Whether PROG's exit is watched through a pidfd.
    watching: bool,
    status: Option<ExitStatus>,
    port_gone: Option<Reason>,
    /// No more output will come: `:eof`, or the port is gone.
    output_done: bool,
    /// PROG has exited.
    exited: bool,
    stdout_ok: bool,
    rung: Rung,
    /// When the next rung is due.
    next: Option<Instant>,
}

impl Runner {
    fn run(&mut self) -> i32 {
        loop {
            let now = Instant::now();
            if self.exited && self.output_done && !self.group_alive() {
                break;
            }
            if self.next.is_some_and(|t| now >= t) {
                if self.rung == Rung::Killed {
                    if self.status_known() {
                        break; // give up on the output: what holds it escaped PROG's group
                    }
                    // PROG got its SIGKILL a moment ago: its status is on its way (it comes
                    // once PROG is reaped, whatever holds its output).
                    self.next = Some(now + GROUP_POLL);
                    continue;
                }
                self.escalate();
                continue;
            }
            let mut wait = self.next.map(|t| t - now);
            if self.exited || (!self.watching && self.output_done) {
                // Waiting for the group to empty: the kernel has no event for that.
                wait = Some(wait.map_or(GROUP_POLL, |w| w.min(GROUP_POLL)));
            }
            let msg = match wait {
                Some(w) => self.me.receive_timeout(w),
                None => self.me.receive().map(Some),
            };
            match msg {
                Ok(Some(m)) => self.handle(m),
                Ok(None) => {}
                Err(_) => break, // our process was killed: nothing more will come
            }
        }
        if self.port.is_open() {
            let _ = self.port.close();
        }
        match self.status.or_else(|| self.port.exit_status()) {
            Some(s) => s.code(),
            None => {
                let why = match &self.port_gone {
                    Some(r) => format!("the port ended with {r:?}"),
                    None => "its output was still held open by a process outside its group".into(),
                };
                eprintln!("beamport run: the program's exit status is unknown ({why})");
                UNKNOWN_STATUS
            }
        }
    }

    fn handle(&mut self, msg: Message) {
        match msg {
            Message::Port(_, PortMsg::Data(d)) => self.output(d.bytes()),
            Message::Port(_, PortMsg::ExitStatus(s)) => self.status = Some(s),
            Message::Port(_, PortMsg::Eof) => {
                self.output_done = true;
                self.on_exit(); // with `:exit_status`, `:eof` waits for the exit
            }
            Message::Port(..) => {}
            Message::Exit(Id::Port(_), reason) => {
                self.output_done = true;
                self.port_gone = Some(reason);
                if !self.watching {
                    self.on_exit(); // no other way to know; the group check still holds us
                }
            }
            Message::User(u) => match u.downcast::<Event>() {
                Ok(Event::StdinClosed) => {
                    let _ = self.port.close_input();
                    if self.watch == Watch::Stdin {
                        self.input_closed();
                    }
                }
                Ok(Event::ParentDied) => {
                    let _ = self.port.close_input();
                    self.input_closed();
                }
                Ok(Event::Signal) => self.escalate(),
                Ok(Event::ProgExited) => self.on_exit(),
                Err(_) => {}
            },
            _ => {}
        }
    }

    /// What `--watch` watches has ended: PROG's input is closed, and the ladder starts after
    /// the grace.
    fn input_closed(&mut self) {
        if self.rung == Rung::Running {
            self.rung = Rung::InputClosed;
            self.next = Some(Instant::now() + self.grace);
        }
    }

    /// Whether PROG's exit status is known: reported by the port at its end, or known to it
    /// before (PROG reaped while something else holds its output).
    fn status_known(&self) -> bool {
        self.status.is_some() || self.port.exit_status().is_some()
    }

    /// Writes PROG's output to stdout; if stdout is gone, PROG is asked to end, as a
    /// program writing to a closed pipe would be.
    fn output(&mut self, bytes: &[u8]) {
        if !self.stdout_ok {
            return;
        }
        let mut out = io::stdout().lock();
        if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
            self.stdout_ok = false;
            if self.rung < Rung::Termed {
                self.escalate();
            }
        }
    }

    /// PROG has exited: whatever is left of its group gets the ladder from SIGTERM on.
    fn on_exit(&mut self) {
        if self.exited {
            return;
        }
        self.exited = true;
        match self.rung {
            Rung::Running | Rung::InputClosed => self.escalate(),
            // A signal sent through the port just before the exit may have been dropped.
            Rung::Termed => self.signal_group(libc::SIGTERM),
            Rung::Killed => self.signal_group(libc::SIGKILL),
        }
    }

    /// Moves one rung up: SIGTERM, then SIGKILL, each followed by a grace period.
    fn escalate(&mut self) {
        let (rung, sig) = match self.rung {
            Rung::Running | Rung::InputClosed => (Rung::Termed, Some(libc::SIGTERM)),
            Rung::Termed => (Rung::Killed, Some(libc::SIGKILL)),
            Rung::Killed => (Rung::Killed, None),
        };
        self.rung = rung;
        let wait = if rung == Rung::Killed { self.grace.max(LAST_WAIT) } else { self.grace };
        self.next = Some(Instant::now() + wait);
        if let Some(sig) = sig {
            self.signal_group(sig);
        }
    }

    /// Signals PROG's process group through the port: the launcher keeps the group
    /// reachable after PROG itself has exited, while the port is open.
    fn signal_group(&self, sig: i32) {
        let _ = self.port.signal(sig);
    }

    /// Whether PROG's process group still has members (checked, never signalled, from here).
    fn group_alive(&self) -> bool {
        rustix::process::Pid::from_raw(self.pgid).is_some_and(|p| rustix::process::test_kill_process_group(p).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
