//! What a port program sees of itself, on every tier and whoever runs the host (root, or a
//! user whose launcher makes a user namespace): its own pid in `/proc`, `ps`, its user, its
//! working directory, and a program path that names a host process's file.
//!
//! The programs run under `beamport run`, a host in a process of its own, so that each case
//! can choose its tier and who forks (`BEAMPORT_SPAWNING=launcher`: the launcher); `scripts/test.sh`
//! runs this suite as root and as an unprivileged user.

mod helpers;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use beamport::{process, Message, Name, Opt, Port, PortMsg};
use helpers::{Guard, Tier};

/// Who forks the program, and on which tier.
#[derive(Clone, Copy, Debug)]
struct Case {
    tier: Tier,
    /// `BEAMPORT_SPAWNING=launcher`: the launcher forks every program (as for a host that is not root).
    launcher_forks: bool,
}

const CASES: [Case; 4] = [
    Case { tier: Tier::Best, launcher_forks: false },
    Case { tier: Tier::Best, launcher_forks: true },
    Case { tier: Tier::NoNamespace, launcher_forks: false },
    Case { tier: Tier::Plain, launcher_forks: false },
];

/// `beamport run -- ARGV` in `cwd` as `case` says, stdin from `/dev/null` (with a grace long
/// enough for the program to end by itself); its exit code and stdout.
fn run(case: Case, argv: &[&str], cwd: &std::path::Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(helpers::beamport());
    cmd.args(["run", "--grace", "1m", "--"]).args(argv).current_dir(cwd);
    case.tier.apply(&mut cmd);
    if case.launcher_forks {
        cmd.env("BEAMPORT_SPAWNING", "launcher");
    } else {
        cmd.env_remove("BEAMPORT_SPAWNING");
    }
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().expect("start beamport run");
    let mut g = Guard { child };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut g.stdout(), &mut out).expect("read beamport run's output");
    (g.wait().code(), out)
}

/// The value of the line `key …` in `out`.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {key:?} line in {out:?}"))
}

/// What the shell prints of itself: `$$`, what `/proc/$$` and `/proc/self` say, `ps`, its
/// user and group, and its working directory.
const SELF_SCRIPT: &str = "echo \"pid $$\"; \
echo \"cmdline $(tr '\\0' ' ' < /proc/$$/cmdline)\"; \
exec 3< /proc/self/stat; read -r stat <&3; echo \"self ${stat%% *}\"; \
if command -v ps >/dev/null; then echo \"ps $(ps -o pid= -p $$ | tr -d ' ')\"; else echo 'ps none'; fi; \
echo \"uid $(id -u) gid $(id -g)\"; \
echo \"cwd $(pwd -P)\"";

#[test]
fn a_program_sees_itself_in_its_proc() {
    let dir = work_dir();
    for case in CASES {
        let (code, out) = run(case, &["sh", "-c", SELF_SCRIPT], &dir);
        assert_eq!(code, Some(0), "{case:?}: {out}");
        let pid = field(&out, "pid");
        assert_eq!(field(&out, "self"), pid, "{case:?}: /proc/self is not the program: {out}");
        let cmdline = field(&out, "cmdline");
        assert!(cmdline.starts_with("sh -c echo"), "{case:?}: /proc/$$/cmdline is not the shell's: {out}");
        match field(&out, "ps") {
            "none" => eprintln!("NOTE {case:?}: `ps` is not installed; /proc checked without it"),
            ps => assert_eq!(ps, pid, "{case:?}: ps does not list the shell as $$: {out}"),
        }
        assert_eq!(std::path::Path::new(field(&out, "cwd")), dir, "{case:?}: {out}");
    }
}

#[test]
fn a_program_runs_as_the_user_who_runs_the_host() {
    let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    for case in CASES {
        let (code, out) = run(case, &["sh", "-c", SELF_SCRIPT], &work_dir());
        assert_eq!(code, Some(0), "{case:?}: {out}");
        // Not root of a user namespace.
        assert_eq!(field(&out, "uid"), format!("{uid} gid {gid}"), "{case:?}: {out}");
    }
}

/// A directory of this test's own to run in (the test's working directory is the crate's,
/// which an unprivileged user running a copy of the suite may not be able to enter).
fn work_dir() -> std::path::PathBuf {
    std::env::temp_dir().canonicalize().expect("the temporary directory")
}

/// A `cat` of the test's own: `/proc/<its pid>/exe` names a host process's file.
fn host_cat() -> Child {
    Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start cat")
}

#[test]
fn a_program_path_in_the_hosts_proc_is_the_hosts() {
    let mut cat = host_cat();
    let exe = format!("/proc/{}/exe", cat.id());
    for case in CASES {
        let (code, _) = run(case, &[&exe, "/dev/null"], &work_dir());
        assert_eq!(code, Some(0), "{case:?}: {exe} (the host's cat) did not run");
    }
    // This process as the host: its port's program is forked by this thread where it may.
    let me = process::current();
    let port = Port::open(Name::executable(&exe), [Opt::Binary, Opt::ExitStatus]).expect("open the port");
    port.command(&b"hello"[..]).expect("command");
    port.close_input().expect("close its input");
    let mut got = Vec::new();
    let status = loop {
        match recv(&me) {
            Message::Port(_, PortMsg::Data(d)) => got.extend_from_slice(d.bytes()),
            Message::Port(_, PortMsg::ExitStatus(st)) => break st.code(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!((status, got.as_slice()), (0, &b"hello"[..]), "{exe} through the library");
    // And the host's cat itself still works.
    let mut stdin = cat.stdin.take().expect("piped");
    stdin.write_all(b"x\n").expect("write to cat");
    drop(stdin);
    let mut line = String::new();
    BufReader::new(cat.stdout.take().expect("piped")).read_line(&mut line).expect("read cat");
    assert_eq!(line, "x\n");
    cat.wait().expect("reap cat");
}

fn recv(me: &process::Process) -> Message {
    match me.receive_timeout(helpers::DEADLINE) {
        Ok(Some(m)) => m,
        other => panic!("no message within {:?}: {other:?}", helpers::DEADLINE),
    }
}
