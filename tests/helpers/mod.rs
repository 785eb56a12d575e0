//! Helpers for the no-orphan tests: a process tree that tries every way of escaping, found
//! again through a unique marker in its environment, and guards that leave nothing behind.
//!
//! Every wait polls `/proc` against a deadline; none sleeps a fixed time to synchronise.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long the tree may take to appear, or to be gone.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// The variable that marks every process of a tree.
pub const MARK_VAR: &str = "BEAMPORT_MARK";

/// A shell script that starts a process in every way a child can try to outlive its host:
///
/// - `sleep 1001`: a background child, in the program's process group;
/// - `sleep 1002`: a child in a session of its own (`setsid`);
/// - `sleep 1003`: a double fork: its parent exits at once, so it is re-parented;
/// - `sleep 1005`: a background child that ignores SIGTERM;
/// - `sleep 1004`: the program itself (`exec`), which ignores SIGTERM too, so that whatever
///   it started is re-parented only when it is SIGKILLed.
pub const TREE_SCRIPT: &str = "sleep 1001 & setsid sleep 1002 & (sleep 1003 &); \
(trap \"\" TERM; exec sleep 1005) & trap \"\" TERM; exec sleep 1004";

/// The `sleep` arguments of the tree's processes.
pub const TREE_SLEEPS: [&str; 5] = ["1001", "1002", "1003", "1004", "1005"];

/// A marked process: its host pid and its command line (arguments joined by spaces).
pub type Proc = (i32, String);

/// A unique marker for this test run.
pub fn new_marker(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("bp-{tag}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Every live process whose environment holds `MARK_VAR=marker`.
pub fn marked(marker: &str) -> Vec<Proc> {
    let entry = format!("{MARK_VAR}={marker}").into_bytes();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|v| v == entry.as_slice()) {
            found.push((pid, cmdline(pid)));
        }
    }
    found.sort();
    found
}

/// The command line of `pid`, arguments joined by spaces ("" once it is gone or a zombie).
pub fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>().join(" ")
}

/// Polls a condition until it holds or a deadline passes (shared with the other suites).
#[path = "../common/mod.rs"]
mod common;
pub use common::wait_until;

/// One marked process tree. Dropping it SIGKILLs whatever is left of it, so that a failing
/// test leaves nothing behind.
pub struct Tree {
    pub marker: String,
}

impl Tree {
    /// A new marker; nothing runs yet.
    pub fn new(tag: &str) -> Tree {
        Tree { marker: new_marker(tag) }
    }

    /// The tree as a program and its arguments: `env BEAMPORT_MARK=… sh -c TREE_SCRIPT`.
    pub fn argv(&self) -> Vec<String> {
        self.argv_of(TREE_SCRIPT)
    }

    /// Any script run marked: `env BEAMPORT_MARK=… sh -c SCRIPT`.
    pub fn argv_of(&self, script: &str) -> Vec<String> {
        vec!["env".into(), format!("{MARK_VAR}={}", self.marker), "sh".into(), "-c".into(), script.into()]
    }

    /// The tree as one shell command (for `{:spawn, cmd}`).
    pub fn command(&self) -> String {
        format!("env {MARK_VAR}={} sh -c '{TREE_SCRIPT}'", self.marker)
    }

    /// Its live processes.
    pub fn procs(&self) -> Vec<Proc> {
        marked(&self.marker)
    }

    /// Its live `sleep`s (`sleep` or `/bin/sleep`), by argument.
    pub fn sleeps(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .procs()
            .into_iter()
            .filter_map(|(_, c)| {
                let (prog, arg) = c.split_once(' ')?;
                (prog.rsplit('/').next() == Some("sleep")).then(|| arg.to_owned())
            })
            .collect();
        v.sort();
        v
    }

    /// Waits until every process of [`TREE_SCRIPT`] runs (has exec'd `sleep`).
    #[track_caller]
    pub fn wait_up(&self) {
        self.wait_for(&TREE_SLEEPS);
    }

    /// Waits until the `sleep`s with these arguments all run.
    #[track_caller]
    pub fn wait_for(&self, sleeps: &[&str]) {
        let ok = wait_until(DEADLINE, || {
            let up = self.sleeps();
            sleeps.iter().all(|s| up.iter().any(|u| u == s))
        });
        assert!(ok, "the tree {} did not come up within {DEADLINE:?}: {:?}", self.marker, self.procs());
    }

    /// Waits until no process of the tree is left; returns the survivors after `within`.
    /// A process caught in the middle of an exec may not show its environment, so the tree
    /// counts as gone only when two scans in a row find nothing.
    pub fn wait_gone(&self, within: Duration) -> Vec<Proc> {
        let mut left = Vec::new();
        let mut empty_scans = 0;
        wait_until(within, || {
            left = self.procs();
            empty_scans = if left.is_empty() { empty_scans + 1 } else { 0 };
            empty_scans >= 2
        });
        left
    }

    /// Fails the test if any process of the tree is still alive after [`DEADLINE`].
    #[track_caller]
    pub fn assert_gone(&self, case: &str) {
        self.assert_gone_within(case, DEADLINE);
    }

    /// Fails the test if any process of the tree is still alive after `within`.
    #[track_caller]
    pub fn assert_gone_within(&self, case: &str, within: Duration) {
        let left = self.wait_gone(within);
        assert!(left.is_empty(), "{case}: processes outlived their host after {within:?}: {left:?}");
    }

    /// SIGKILLs every process of the tree.
    pub fn kill_all(&self) {
        for (pid, _) in self.procs() {
            kill(pid, libc::SIGKILL);
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        // Keep killing while anything is left: a parent may start a child as we go.
        wait_until(DEADLINE, || {
            self.kill_all();
            self.procs().is_empty()
        });
    }
}

/// Sends `sig` to `pid`; false if it is gone.
pub fn kill(pid: i32, sig: i32) -> bool {
    let (Some(p), Some(s)) = (rustix::process::Pid::from_raw(pid), rustix::process::Signal::from_named_raw(sig)) else {
        return false;
    };
    rustix::process::kill_process(p, s).is_ok()
}

/// The live children of `pid` whose command line starts with `prefix`.
pub fn children_named(pid: i32, prefix: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&c| {
            let stat = std::fs::read_to_string(format!("/proc/{c}/stat")).unwrap_or_default();
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            ppid == Some(pid) && alive(c) && cmdline(c).starts_with(prefix)
        })
        .collect()
}

/// Whether `pid` exists (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Path of the `beamport` binary under test: the one cargo built, or `BEAMPORT_TEST_BIN` for a
/// copy of the suite run elsewhere (`scripts/test.sh` runs one as an unprivileged user).
pub fn beamport() -> PathBuf {
    std::env::var_os("BEAMPORT_TEST_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_beamport")), PathBuf::from)
}

/// Builds an example of this package once per test binary and returns its path. Cargo
/// builds examples only for `cargo test` without a target filter, so the tests ask for it.
/// With `BEAMPORT_TEST_PREBUILT` set, the examples are already next to this test binary (in
/// `../examples`), and no cargo is run.
pub fn example(name: &'static str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<&'static str>>> = OnceLock::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = std::env::current_exe()
        .ok()
        .and_then(|t| t.parent()?.parent().map(|d| d.join("examples").join(name)))
        .unwrap_or_else(|| dir.join("target/debug/examples").join(name));
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(&name) && std::env::var_os("BEAMPORT_TEST_PREBUILT").is_none() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // Into the profile directory this test binary runs from (`cargo test --release`
        // looks for its examples in target/release).
        let profile: &[&str] = if cfg!(debug_assertions) { &[] } else { &["--release"] };
        let st = Command::new(cargo)
            .args(["build", "--quiet", "-p", "beamport", "--example", name])
            .args(profile)
            .current_dir(dir)
            .status()
            .expect("run cargo build --example");
        assert!(st.success(), "cargo build --example {name} failed");
        built.push(name);
    }
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

/// A child process under test, killed and reaped when dropped.
pub struct Guard {
    pub child: Child,
}

impl Guard {
    /// Spawns `cmd` with piped stdin and stdout.
    pub fn spawn(cmd: &mut Command) -> Guard {
        let child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn the process under test");
        Guard { child }
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Takes its stdin.
    pub fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin is piped")
    }

    /// Takes its stdout.
    pub fn stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().expect("stdout is piped")
    }

    /// Waits for it to exit, at most [`DEADLINE`]; its exit status.
    #[track_caller]
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.wait_within(DEADLINE)
    }

    /// Waits for it to exit, at most `within`; its exit status.
    #[track_caller]
    pub fn wait_within(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut status = None;
        wait_until(within, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status.unwrap_or_else(|| panic!("pid {} did not exit within {within:?}", self.pid()))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a process under test writes on its stderr, read by a thread of its own, so that
/// messages a test provokes on purpose (a panic, "command not found") are checked by the
/// test instead of reaching the terminal, where they would look like failures.
#[derive(Clone, Default)]
pub struct StderrLog {
    text: Arc<Mutex<Vec<u8>>>,
    ended: Arc<AtomicBool>,
}

impl StderrLog {
    /// Reads `child`'s piped stderr until EOF (every process holding it has closed it).
    pub fn capture(child: &mut Child) -> StderrLog {
        let mut err = child.stderr.take().expect("stderr is piped");
        let log = StderrLog::default();
        let (text, ended) = (log.text.clone(), log.ended.clone());
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                text.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            ended.store(true, Ordering::SeqCst);
        });
        log
    }

    /// What was read so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    /// Whether `needle` has been written, waiting for it at most [`DEADLINE`].
    pub fn shows(&self, needle: &str) -> bool {
        wait_until(DEADLINE, || self.text().contains(needle))
    }

    /// Everything written, once EOF is read (at most [`DEADLINE`] from now).
    pub fn until_eof(&self) -> String {
        wait_until(DEADLINE, || self.ended.load(Ordering::SeqCst));
        self.text()
    }
}

/// Which no-orphan tier a host asks for: the strongest available, or one forced weaker with
/// `BEAMPORT_NO_NAMESPACE` / `BEAMPORT_NO_CGROUP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// The strongest the machine offers (a PID namespace here).
    Best,
    /// No PID namespace: a cgroup v2 group with `cgroup.kill`, where there is one.
    NoNamespace,
    /// Neither: process groups + subreaper + PDEATHSIG.
    Plain,
}

impl Tier {
    /// Sets the variables that select this tier on `cmd`.
    pub fn apply(self, cmd: &mut Command) {
        for (var, off) in [("BEAMPORT_NO_NAMESPACE", self != Tier::Best), ("BEAMPORT_NO_CGROUP", self == Tier::Plain)] {
            if off {
                cmd.env(var, "1");
            } else {
                cmd.env_remove(var);
            }
        }
    }
}

/// A running `examples/host.rs` with a port on some program.
pub struct Host {
    pub guard: Guard,
    pub stdin: Option<ChildStdin>,
    /// The host's stderr (and its port programs' stderr, which is the host's).
    pub stderr: StderrLog,
    pub launcher: i32,
    pub child: i32,
    pub tier: String,
}

impl Host {
    /// Starts the host on `argv`, asking for `tier`, and reads what it prints once its port
    /// is open.
    pub fn start(argv: &[String], tier: Tier) -> Host {
        let mut cmd = Command::new(example("host"));
        cmd.args(argv).env("RUST_BACKTRACE", "0").stderr(Stdio::piped());
        tier.apply(&mut cmd);
        let mut guard = Guard::spawn(&mut cmd);
        let stderr = StderrLog::capture(&mut guard.child);
        let stdin = guard.stdin();
        let mut out = BufReader::new(guard.stdout());
        let mut field = |name: &str| {
            let mut line = String::new();
            out.read_line(&mut line).expect("read the host's stdout");
            line.trim()
                .strip_prefix(name)
                .unwrap_or_else(|| panic!("the host printed {line:?}, not {name:?}; stderr: {}", stderr.text()))
                .trim()
                .to_owned()
        };
        let launcher = field("launcher").parse().expect("launcher pid");
        let child = field("child").parse().expect("child pid");
        let tier = field("tier");
        Host { guard, stdin: Some(stdin), stderr, launcher, child, tier }
    }

    /// Tells the host what to do: `exit`, `panic` or `abort`.
    pub fn tell(&mut self, what: &str) {
        let mut s = self.stdin.take().expect("told once");
        writeln!(s, "{what}").expect("write to the host");
    }

    /// Whether the host's launcher is PID 1 of a PID namespace.
    pub fn in_namespace(&self) -> bool {
        self.tier.contains("namespace")
    }

    /// Whether the host's launcher lives in a cgroup of its own.
    pub fn in_cgroup(&self) -> bool {
        self.tier.contains("cgroup")
    }
}

impl Drop for Host {
    /// Shows the host's stderr in the test's captured output (printed if the test fails).
    fn drop(&mut self) {
        let text = self.stderr.text();
        if !text.is_empty() {
            eprint!("the host's stderr:\n{text}");
        }
    }
}
