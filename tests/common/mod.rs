//! Helpers shared by the integration tests: receiving with deadlines, watching OS processes
//! go away, counting fds, temporary files, and a tiny `block_on`.
//!
//! Every wait here has a deadline ([`DEADLINE`] unless told otherwise) and fails the test
//! with a message naming what did not happen, instead of hanging.
#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use beamport::process::{self, Exited, Pid, Process};
use beamport::{Data, Id, Message, Name, Opt, Port, PortMsg, Reason, Ref};

/// How long any single wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// How long "nothing else arrives" is watched for.
pub const QUIET: Duration = Duration::from_millis(100);

/// The next message, within [`DEADLINE`].
///
/// # Panics
///
/// If nothing arrives in time, or if `me` has exited.
#[track_caller]
pub fn recv(me: &Process) -> Message {
    recv_within(me, DEADLINE)
}

/// The next message, within `within`.
///
/// # Panics
///
/// If nothing arrives in time, or if `me` has exited.
#[track_caller]
pub fn recv_within(me: &Process, within: Duration) -> Message {
    match me.receive_timeout(within) {
        Ok(Some(m)) => m,
        Ok(None) => panic!("{me:?}: no message within {within:?}"),
        Err(e) => panic!("{me:?}: mailbox call failed: {e}"),
    }
}

/// The next message as iex prints it.
#[track_caller]
pub fn recv_dbg(me: &Process) -> String {
    format!("{:?}", recv(me))
}

/// The next `n` messages, each within [`DEADLINE`].
#[track_caller]
pub fn recv_n(me: &Process, n: usize) -> Vec<Message> {
    (0..n).map(|_| recv(me)).collect()
}

/// The first message matching `pred`, within [`DEADLINE`]; the others stay in order.
#[track_caller]
pub fn recv_match(me: &Process, pred: impl FnMut(&Message) -> bool) -> Message {
    match me.receive_match(pred, Some(DEADLINE)) {
        Ok(Some(m)) => m,
        Ok(None) => {
            panic!("{me:?}: no matching message within {DEADLINE:?}; mailbox: {:?}", me.flush().unwrap_or_default())
        }
        Err(e) => panic!("{me:?}: mailbox call failed: {e}"),
    }
}

/// Fails the test if any message arrives within `within`.
#[track_caller]
pub fn no_more_messages(me: &Process, within: Duration) {
    match me.receive_timeout(within) {
        Ok(None) => {}
        Ok(Some(m)) => panic!("{me:?}: unexpected message {m:?}"),
        Err(e) => panic!("{me:?}: mailbox call failed: {e}"),
    }
}

/// `{port, {:data, d}}` → `d`, or a panic naming what came instead.
#[track_caller]
pub fn expect_data(msg: Message, port: &Port) -> Data {
    match msg {
        Message::Port(p, PortMsg::Data(d)) if &p == port => d,
        other => panic!("expected {{{port:?}, {{:data, _}}}}, got {other:?}"),
    }
}

/// Collects `{:data, _}` messages from `port` until `len` bytes have come (stream mode
/// chunks as the pipe does). Fails on any other message.
#[track_caller]
pub fn recv_bytes(me: &Process, port: &Port, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        got.extend_from_slice(expect_data(recv(me), port).bytes());
    }
    assert_eq!(got.len(), len, "more data than expected: {:?}", String::from_utf8_lossy(&got));
    got
}

/// Collects `{:data, _}` messages from `port` until the first other message, which is
/// returned with the bytes.
#[track_caller]
pub fn recv_all_data(me: &Process, port: &Port) -> (Vec<u8>, Message) {
    let mut got = Vec::new();
    loop {
        match recv(me) {
            Message::Port(p, PortMsg::Data(d)) if &p == port => got.extend_from_slice(d.bytes()),
            other => return (got, other),
        }
    }
}

/// `format!("{{{port:?}, {rest}}}")`: how iex prints a message from `port`.
pub fn from_port(port: &Port, rest: &str) -> String {
    format!("{{{port:?}, {rest}}}")
}

/// Polls `cond` until it is true or `within` has passed; returns whether it became true.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `/proc/<os_pid>` names a live process (zombies count as gone: they have ended).
pub fn os_pid_alive(os_pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{os_pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Waits (up to [`DEADLINE`]) for the OS process `os_pid` to be gone.
///
/// # Panics
///
/// If it is still alive at the deadline.
#[track_caller]
pub fn children_of_launcher_gone(os_pid: i32) {
    assert!(
        wait_until(DEADLINE, || !os_pid_alive(os_pid)),
        "OS process {os_pid} ({:?}) still alive after {DEADLINE:?}",
        cmdline(os_pid)
    );
}

/// `/proc/<os_pid>/cmdline` split at NULs, or empty if the process is gone.
pub fn cmdline(os_pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{os_pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
        })
        .unwrap_or_default()
}

/// Direct children of `os_pid`, from `/proc/<os_pid>/task/*/children`.
pub fn children(os_pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{os_pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<i32> = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<i32>>())
        .filter(|&p| os_pid_alive(p))
        .collect();
    out.sort_unstable();
    out
}

/// Every live descendant of `os_pid`.
pub fn descendants(os_pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = children(os_pid);
    while let Some(p) = todo.pop() {
        todo.extend(children(p));
        out.push(p);
    }
    out.sort_unstable();
    out
}

/// The launcher's pid in this (the host's) PID namespace.
pub fn launcher_pid() -> i32 {
    beamport::doctor::report().expect("the launcher starts").launcher_pid
}

/// Every process a port started and that is not gone, with its command line: the launcher's
/// descendants, and the programs the host forked itself into the launcher's namespace (its
/// own children but the launcher) with theirs. A child of the host that has exited but is not
/// reaped yet counts: reaping it is the host's job.
pub fn port_processes() -> Vec<(i32, Vec<String>)> {
    let launcher = launcher_pid();
    let mut all = descendants(launcher);
    for child in children_with_zombies(std::process::id() as i32).into_iter().filter(|&c| c != launcher) {
        all.push(child);
        all.extend(descendants(child));
    }
    all.sort_unstable();
    all.into_iter().map(|p| (p, cmdline(p))).collect()
}

/// Direct children of `os_pid`, exited but unreaped ones included.
pub fn children_with_zombies(os_pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{os_pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<i32>>())
        .collect()
}

/// Number of fds open in this process.
pub fn fd_count() -> usize {
    // The directory handle itself is one of the entries, the same on every call.
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

/// A path in the temp dir that no other test uses; what it names is removed on drop.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    /// What drop removes: `path` itself, or the fresh directory holding it.
    root: PathBuf,
}

fn unique_temp(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("beamport-test-{}-{n}-{tag}", std::process::id()))
}

impl TempPath {
    /// A fresh, unused path whose name contains `tag` (nothing is created).
    pub fn new(tag: &str) -> TempPath {
        let path = unique_temp(tag);
        TempPath { root: path.clone(), path }
    }

    /// A path named `tag` inside a fresh directory, removed whole on drop. For files a
    /// port program writes: if the test fails early, a program that creates the file
    /// later finds no directory, and leaves nothing behind.
    pub fn in_dir(tag: &str) -> TempPath {
        let root = unique_temp(tag);
        std::fs::create_dir(&root).expect("create a temp dir");
        TempPath { path: root.join(tag), root }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a `&str` (temp paths are UTF-8 here).
    pub fn as_str(&self) -> &str {
        self.path.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.root.is_dir() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            let _ = std::fs::remove_file(&self.root);
        }
    }
}

/// A shell script in a temp file, made executable.
pub fn script(tag: &str, body: &str) -> TempPath {
    use std::os::unix::fs::PermissionsExt;
    let t = TempPath::new(tag);
    std::fs::write(t.path(), body).expect("write script");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod script");
    t
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread (no runtime needed), failing after
/// [`DEADLINE`].
#[track_caller]
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        let now = Instant::now();
        assert!(now < deadline, "future not ready within {DEADLINE:?}");
        thread::park_timeout(deadline - now);
    }
}

/// Asks a [`spawn_forwarder`] process to end normally.
#[derive(Debug)]
pub struct Stop;

/// Asks a [`spawn_forwarder`] process to panic with `"boom"`.
#[derive(Debug)]
pub struct Crash;

/// Asks a [`spawn_forwarder`] process to end with this reason (Erlang's `exit/1`).
#[derive(Debug)]
pub struct ExitWith(pub Reason);

/// A job for a [`spawn_forwarder`] process to run on its own thread.
pub struct Job(pub Box<dyn FnOnce(&Process) + Send>);

/// What a [`spawn_forwarder`] process tells its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A message it received, as iex prints it.
    Msg(String),
    /// Its mailbox calls failed: it was killed with this reason.
    Exited(Reason),
}

/// Starts a process that forwards every message it gets to the caller as
/// [`Report::Msg`], obeys [`Stop`], [`Crash`], [`ExitWith`] and [`Job`], and reports
/// [`Report::Exited`] if it is killed. It traps exits if `trap`.
pub fn spawn_forwarder(trap: bool) -> Pid {
    spawn_forwarder_with(trap, |_| {})
}

/// Like [`spawn_forwarder`], running `setup` first (on the new process's thread). Returns
/// once `trap_exit` is set and `setup` has run.
pub fn spawn_forwarder_with(trap: bool, setup: impl FnOnce(&Process) + Send + 'static) -> Pid {
    let parent = process::current().pid();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let pid = process::spawn(move |me| {
        me.trap_exit(trap);
        setup(&me);
        let _ = ready_tx.send(());
        forward(&me, parent);
    });
    ready_rx.recv_timeout(DEADLINE).expect("the forwarder is set up");
    pid
}

fn forward(me: &Process, parent: Pid) {
    loop {
        match me.receive() {
            Ok(Message::User(u)) => {
                let u = match u.downcast::<Stop>() {
                    Ok(Stop) => return,
                    Err(u) => u,
                };
                let u = match u.downcast::<Crash>() {
                    Ok(Crash) => panic!("boom"),
                    Err(u) => u,
                };
                let u = match u.downcast::<ExitWith>() {
                    Ok(ExitWith(r)) => {
                        me.exit(r);
                        continue; // the next receive reports the death
                    }
                    Err(u) => u,
                };
                match u.downcast::<Job>() {
                    Ok(Job(job)) => job(me),
                    Err(u) => process::send(parent, Report::Msg(format!("{u:?}"))),
                }
            }
            Ok(m) => process::send(parent, Report::Msg(format!("{m:?}"))),
            Err(Exited(r)) => {
                process::send(parent, Report::Exited(r));
                return;
            }
        }
    }
}

/// Starts a forwarder that opens a port first; returns its pid and the port.
#[track_caller]
pub fn spawn_owner(name: Name, opts: Vec<Opt>, trap: bool) -> (Pid, Port) {
    let me = process::current();
    let parent = me.pid();
    let pid = spawn_forwarder_with(trap, move |_| {
        let port = Port::open(name, opts).expect("the owner opens its port");
        process::send(parent, port);
    });
    let m = recv_match(&me, |m| matches!(m, Message::User(u) if u.downcast_ref::<Port>().is_some()));
    let Message::User(u) = m else { unreachable!() };
    (pid, u.downcast::<Port>().expect("a port"))
}

/// The next [`Report`] from a forwarder (other messages stay in the mailbox).
#[track_caller]
pub fn recv_report(me: &Process) -> Report {
    let m = recv_match(me, |m| matches!(m, Message::User(u) if u.downcast_ref::<Report>().is_some()));
    let Message::User(u) = m else { unreachable!() };
    u.downcast::<Report>().expect("a report")
}

/// Fails the test if a forwarder reports anything within `within`.
#[track_caller]
pub fn no_more_reports(me: &Process, within: Duration) {
    let got = me
        .receive_match(|m| matches!(m, Message::User(u) if u.downcast_ref::<Report>().is_some()), Some(within))
        .expect("mailbox");
    assert!(got.is_none(), "unexpected report {got:?}");
}

/// `{:EXIT, from, reason}` as iex prints it.
pub fn exit_msg(from: impl Into<Id>, reason: &str) -> String {
    format!("{{:EXIT, {:?}, {reason}}}", from.into())
}

/// Waits for `{:DOWN, r, _, _, reason}` and returns the reason.
#[track_caller]
pub fn recv_down(me: &Process, r: Ref) -> Reason {
    match recv_match(me, |m| matches!(m, Message::Down(x, _, _) if *x == r)) {
        Message::Down(_, _, reason) => reason,
        _ => unreachable!(),
    }
}

/// For an owner that traps exits: the port's data until it closes at EOF, which must be
/// `{:EXIT, port, :normal}`.
#[track_caller]
pub fn recv_output(me: &Process, port: &Port) -> String {
    let (out, last) = recv_all_data(me, port);
    assert_eq!(format!("{last:?}"), exit_msg(port, ":normal"));
    String::from_utf8(out).expect("UTF-8 output")
}

/// The next reports from several forwarders, which may come in any order: fails unless
/// they are exactly `expected`, as a multiset.
#[track_caller]
pub fn assert_reports<const N: usize>(me: &Process, expected: [Report; N]) {
    let mut got: Vec<String> = (0..N).map(|_| format!("{:?}", recv_report(me))).collect();
    let mut want: Vec<String> = expected.iter().map(|r| format!("{r:?}")).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}
