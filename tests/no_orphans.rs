//! No child outlives its host: a tree with a background child, a `setsid` child, a double
//! fork and SIGTERM-ignoring processes (see [`helpers::TREE_SCRIPT`]) is started through a
//! port, then the host ends in every way it can, and the kernel is polled (with a deadline)
//! until no process of the tree is left.
//!
//! The host is `examples/host.rs`, a separate process; `beamport run` and `beamport open` are
//! tested as hosts too. Each case runs on the strongest tier this machine offers, on the
//! cgroup tier (`BEAMPORT_NO_NAMESPACE=1`) and on the weakest (`BEAMPORT_NO_CGROUP=1` too:
//! process groups + subreaper + PDEATHSIG). What a weaker tier cannot promise is reported as
//! an expected limitation, not a failure.

mod helpers;

use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use helpers::{kill, Guard, Host, Tier, Tree, DEADLINE};

/// How a host ends.
#[derive(Clone, Copy, Debug)]
enum End {
    /// (a) `main` returns, the port still open.
    Exit,
    /// (b) `main` panics.
    Panic,
    /// (b') the host aborts (SIGABRT), as a crash would end it.
    Abort,
    /// (c) SIGKILL to the host.
    KillHost,
    /// (d) SIGKILL to the launcher; the host lives on.
    KillLauncher,
    /// (e) SIGKILL to the host and the launcher at once.
    KillBoth,
}

/// Whether the host's tier promises that the whole tree ends when the host ends as `end`
/// says. When the launcher dies with the host, only a PID namespace can end escapees; when
/// only the launcher dies, the cgroup tier's host ends them with `cgroup.kill`.
fn promised(host: &Host, end: End) -> bool {
    match end {
        End::KillBoth => host.in_namespace(),
        End::KillLauncher => host.in_namespace() || host.in_cgroup(),
        _ => true,
    }
}

/// Starts a host with a port on the tree, ends it as `end` says, and checks that the tree is
/// gone. Where the tier cannot promise that (see [`promised`]), the case checks what the
/// tier does promise (the launcher's direct child dies, by PDEATHSIG) and reports the rest
/// as an expected limitation.
fn host_case(end: End, tier: Tier) {
    let tree = Tree::new(&format!("{end:?}-{tier:?}"));
    let mut host = Host::start(&tree.argv(), tier);
    let case = format!("{end:?} asking for {tier:?}, on tier {:?}", host.tier);
    if tier == Tier::Best && !host.in_namespace() {
        eprintln!("NOTE {case}: no PID namespace on this machine");
    }
    tree.wait_up();
    match end {
        End::Exit => {
            host.tell("exit");
            assert!(host.guard.wait().success(), "{case}");
        }
        End::Panic => {
            host.tell("panic");
            assert_eq!(host.guard.wait().code(), Some(101), "{case}");
            assert!(host.stderr.shows("the host panics, as asked"), "{case}: stderr {:?}", host.stderr.text());
        }
        End::Abort => {
            host.tell("abort");
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(host.guard.wait().signal(), Some(libc::SIGABRT), "{case}");
        }
        End::KillHost => {
            kill(host.guard.pid(), libc::SIGKILL);
        }
        End::KillLauncher => {
            kill(host.launcher, libc::SIGKILL);
        }
        End::KillBoth => {
            kill(host.guard.pid(), libc::SIGKILL);
            kill(host.launcher, libc::SIGKILL);
        }
    }
    if !promised(&host, end) {
        let ok = helpers::wait_until(DEADLINE, || !helpers::alive(host.child));
        assert!(ok, "{case}: the launcher's direct child survived it");
        let left = tree.wait_gone(Duration::from_millis(200));
        eprintln!(
            "EXPECTED LIMITATION {case}: {} of the tree's processes outlive the launcher: {left:?} \
             (the test's guard kills them now)",
            left.len()
        );
        return;
    }
    tree.assert_gone(&case);
    if matches!(end, End::KillLauncher) {
        // The host outlives its launcher; it still ends cleanly.
        host.tell("exit");
        host.guard.wait();
    }
}

/// One test per way of ending and tier.
macro_rules! host_cases {
    ($($name:ident: $end:ident, $tier:ident;)*) => {
        $(
            #[test]
            fn $name() {
                host_case(End::$end, Tier::$tier);
            }
        )*
    };
}

host_cases! {
    a_host_exits: Exit, Best;
    b_host_panics: Panic, Best;
    b_host_aborts: Abort, Best;
    c_host_sigkilled: KillHost, Best;
    d_launcher_sigkilled: KillLauncher, Best;
    e_host_and_launcher_sigkilled: KillBoth, Best;
    cgroup_tier_a_host_exits: Exit, NoNamespace;
    cgroup_tier_b_host_panics: Panic, NoNamespace;
    cgroup_tier_c_host_sigkilled: KillHost, NoNamespace;
    cgroup_tier_d_launcher_sigkilled: KillLauncher, NoNamespace;
    cgroup_tier_e_host_and_launcher_sigkilled_is_a_known_limitation: KillBoth, NoNamespace;
    plain_tier_a_host_exits: Exit, Plain;
    plain_tier_b_host_panics: Panic, Plain;
    plain_tier_c_host_sigkilled: KillHost, Plain;
    plain_tier_d_launcher_sigkilled_is_a_known_limitation: KillLauncher, Plain;
    plain_tier_e_host_and_launcher_sigkilled_is_a_known_limitation: KillBoth, Plain;
}

// ---- beamport run -------------------------------------------------------------------------

/// `beamport run --grace 200ms -- ARGV` with piped stdin and stdout.
fn run(argv: &[String], tier: Tier) -> Guard {
    let mut cmd = Command::new(helpers::beamport());
    cmd.args(["run", "--grace", "200ms", "--"]).args(argv);
    tier.apply(&mut cmd);
    Guard::spawn(&mut cmd)
}

fn run_stdin_closed(tier: Tier) {
    let tree = Tree::new("run-stdin");
    let mut run = run(&tree.argv(), tier);
    tree.wait_up();
    drop(run.stdin());
    // PROG ignores SIGTERM: the ladder needs its SIGKILL rung.
    run.wait();
    tree.assert_gone("(f) stdin of beamport run closed");
}

#[test]
fn f_run_stdin_closed() {
    run_stdin_closed(Tier::Best);
}

#[test]
fn cgroup_tier_f_run_stdin_closed() {
    run_stdin_closed(Tier::NoNamespace);
}

#[test]
fn plain_tier_f_run_stdin_closed() {
    run_stdin_closed(Tier::Plain);
}

fn run_sigkilled(tier: Tier) {
    let tree = Tree::new("run-kill");
    let run = run(&tree.argv(), tier);
    tree.wait_up();
    kill(run.pid(), libc::SIGKILL);
    tree.assert_gone("(g) beamport run SIGKILLed");
}

#[test]
fn g_run_sigkilled() {
    run_sigkilled(Tier::Best);
}

#[test]
fn cgroup_tier_g_run_sigkilled() {
    run_sigkilled(Tier::NoNamespace);
}

#[test]
fn plain_tier_g_run_sigkilled() {
    run_sigkilled(Tier::Plain);
}

#[test]
fn run_signalled_ends_the_tree() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let tree = Tree::new("run-sig");
        let mut run = run(&tree.argv(), Tier::Best);
        tree.wait_up();
        kill(run.pid(), sig);
        run.wait();
        tree.assert_gone(&format!("beamport run got signal {sig}"));
    }
}

#[test]
fn run_signal_reaches_prog_and_its_status_comes_back() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let tree = Tree::new("run-sig-status");
        let mut run = run(&tree.argv_of("exec sleep 1000"), Tier::Best);
        tree.wait_for(&["1000"]);
        kill(run.pid(), sig);
        // Whatever the signal, PROG gets SIGTERM first.
        assert_eq!(run.wait().code(), Some(128 + libc::SIGTERM), "signal {sig}");
        tree.assert_gone("beamport run signalled");
    }
}

/// Ctrl-C in a terminal sends SIGINT to the whole foreground process group. Only `beamport
/// run` should act on it (with its ladder and grace); today the launcher, which shares the
/// host's process group, takes it as "the host is gone" and SIGKILLs PROG 500 ms later.
#[test]
fn run_handles_ctrl_c_to_its_group() {
    use std::os::unix::process::CommandExt;
    let tree = Tree::new("run-ctrl-c");
    let mut cmd = Command::new(helpers::beamport());
    cmd.args(["run", "--grace", "3s", "--"])
        .args(tree.argv_of("trap \"sleep 1; exit 5\" TERM; sleep 1000 & wait"))
        .process_group(0);
    let mut run = Guard::spawn(&mut cmd);
    tree.wait_for(&["1000"]);
    let pgid = rustix::process::Pid::from_raw(run.pid()).unwrap();
    rustix::process::kill_process_group(pgid, rustix::process::Signal::INT).unwrap();
    // PROG gets SIGTERM from beamport run and the whole grace to finish its handler.
    assert_eq!(run.wait_within(Duration::from_secs(10)).code(), Some(5));
    tree.assert_gone("Ctrl-C to beamport run's group");
}

/// The launcher dies while a request from the host (here the SIGTERM that `beamport run`
/// forwards) is still unread: the host then reads ECONNRESET, not EOF, on the launcher's
/// socket, and must still take the launcher for gone (and report PROG's end).
#[test]
fn run_notices_its_launchers_death_with_requests_unread() {
    let tree = Tree::new("run-reset");
    let mut run = run(&tree.argv_of("exec sleep 1000"), Tier::Best);
    tree.wait_for(&["1000"]);
    let launcher = helpers::children_named(run.pid(), "beamport-launcher");
    assert_eq!(launcher.len(), 1, "beamport run's launcher: {launcher:?}");
    kill(run.pid(), libc::SIGINT);
    kill(launcher[0], libc::SIGTERM);
    // 143 if PROG died of beamport run's SIGTERM; 137 if the launcher went first.
    let code = run.wait().code();
    assert!(matches!(code, Some(137 | 143)), "beamport run exited with {code:?}");
    tree.assert_gone("launcher and beamport run signalled together");
}

#[test]
fn run_ends_what_prog_left_in_its_group() {
    let tree = Tree::new("run-bg");
    // The background child holds PROG's stdout: without the group's ladder, no EOF would come.
    let mut run = run(&tree.argv_of("sleep 1001 & (trap \"\" TERM; exec sleep 1005) & echo started"), Tier::Best);
    let mut out = String::new();
    run.stdout().read_to_string(&mut out).unwrap();
    assert_eq!(out, "started\n");
    assert_eq!(run.wait().code(), Some(0));
    tree.assert_gone("the group PROG left behind");
}

/// Runs `beamport run -- ARGS` with `input` on stdin; its exit code and stdout.
fn run_with_input(args: &[&str], input: &[u8]) -> (Option<i32>, Vec<u8>) {
    let (code, out, err) = run_with_input_and_stderr(args, input);
    eprint!("{err}"); // into the test's captured output, shown if it fails
    (code, out)
}

/// The same, with what `beamport run` and PROG wrote on stderr.
fn run_with_input_and_stderr(args: &[&str], input: &[u8]) -> (Option<i32>, Vec<u8>, String) {
    let mut cmd = Command::new(helpers::beamport());
    cmd.arg("run").arg("--").args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut g = Guard { child: cmd.spawn().unwrap() };
    let err = helpers::StderrLog::capture(&mut g.child);
    let mut stdin = g.stdin();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = Vec::new();
    g.stdout().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    let code = g.wait().code();
    (code, out, err.until_eof())
}

/// `--grace 0`: the ladder runs through at once, and beamport still waits for PROG's status
/// and for the output PROG wrote.
#[test]
fn run_with_no_grace_still_learns_the_status_and_the_output() {
    for i in 0..6 {
        // stdin closes at once: SIGTERM at once, SIGKILL right after it, and the status of
        // whichever ended `sleep` comes back.
        let mut cmd = Command::new(helpers::beamport());
        cmd.args(["run", "--grace", "0", "--", "sleep", "100"]).stdin(Stdio::null()).stderr(Stdio::piped());
        let mut g = Guard { child: cmd.spawn().unwrap() };
        let code = g.wait().code();
        let mut err = String::new();
        g.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let signalled = [Some(128 + libc::SIGTERM), Some(128 + libc::SIGKILL)].contains(&code);
        assert!(signalled && err.is_empty(), "run {i}: sleep with stdin closed: {code:?}, stderr {err:?}");
        // stdin stays open: PROG's exit starts the ladder, its output still comes through.
        let mut cmd = Command::new(helpers::beamport());
        cmd.args(["run", "--grace", "0", "--", "sh", "-c", "echo hi"]).stderr(Stdio::piped());
        let mut g = Guard::spawn(&mut cmd);
        let mut out = String::new();
        g.stdout().read_to_string(&mut out).unwrap();
        let code = g.wait().code();
        let mut err = String::new();
        g.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "hi\n", ""), "run {i}: echo hi");
    }
}

/// `--watch parent`: the end of stdin is only PROG's EOF, as for a cron job or `</dev/null`.
#[test]
fn run_watching_its_parent_lets_prog_outlive_its_stdin() {
    let script = "cat; sleep 1; echo done";
    let ended = |watch: &str| {
        let mut cmd = Command::new(helpers::beamport());
        cmd.args(["run", "--watch", watch, "--grace", "100ms", "--", "sh", "-c", script]).stdin(Stdio::null());
        let mut g = Guard { child: cmd.stdout(Stdio::piped()).spawn().unwrap() };
        let mut out = String::new();
        g.stdout().read_to_string(&mut out).unwrap();
        (g.wait().code(), out)
    };
    assert_eq!(ended("parent"), (Some(0), "done\n".into()), "--watch parent");
    // The default: SIGTERM 100 ms after stdin's end (SIGKILL if the program had not even
    // exec'd, with signals blocked, 100 ms later).
    let (code, out) = ended("stdin");
    assert!([Some(143), Some(137)].contains(&code) && out.is_empty(), "--watch stdin: {code:?} {out:?}");
}

/// `--watch parent`: when beamport's parent dies, PROG gets the ladder (here it ignores
/// SIGTERM, and so does one of its children), and beamport and its launcher end too.
#[test]
fn run_watching_its_parent_ends_everything_when_the_parent_dies() {
    let tree = Tree::new("run-parent");
    // The parent: a shell that waits for beamport (`; :` keeps it from exec'ing), marked too,
    // so that beamport and its launcher are part of the tree. Its stdin (beamport's) stays
    // open: only the parent's death can start the ladder.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("\"$0\" run --watch parent --grace 200ms -- \"$@\"; :")
        .arg(helpers::beamport())
        .args(tree.argv())
        .env(helpers::MARK_VAR, &tree.marker);
    let parent = Guard::spawn(&mut cmd);
    tree.wait_up();
    kill(parent.pid(), libc::SIGKILL);
    tree.assert_gone("(h) the parent of beamport run --watch parent SIGKILLed");
}

/// `nohup beamport run …`: a SIGHUP beamport was started ignoring stays ignored.
#[test]
fn run_keeps_an_ignored_sighup_ignored() {
    let tree = Tree::new("run-nohup");
    let mut cmd = Command::new("sh");
    // `trap '' HUP` before the exec: beamport starts with SIGHUP ignored, as under `nohup`.
    cmd.arg("-c")
        .arg("trap '' HUP; exec \"$0\" run --grace 100ms -- \"$@\"")
        .arg(helpers::beamport())
        .args(tree.argv_of("exec sleep 1000"));
    let mut run = Guard::spawn(&mut cmd);
    tree.wait_for(&["1000"]);
    // The kernel's word on it: ignored (`SigIgn`), not caught (`SigCgt`).
    let status = std::fs::read_to_string(format!("/proc/{}/status", run.pid())).unwrap();
    let mask = |name: &str| {
        let line = status.lines().find_map(|l| l.strip_prefix(name)).unwrap();
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    let hup = 1u64 << (libc::SIGHUP - 1);
    assert_eq!((mask("SigIgn:") & hup, mask("SigCgt:") & hup), (hup, 0), "SIGHUP is not left ignored");
    kill(run.pid(), libc::SIGTERM);
    assert_eq!(run.wait().code(), Some(128 + libc::SIGTERM));
    tree.assert_gone("beamport run with SIGHUP ignored, then SIGTERMed");
}

#[test]
fn run_exits_with_the_programs_status() {
    assert_eq!(run_with_input(&["false"], b"").0, Some(1));
    assert_eq!(run_with_input(&["true"], b"").0, Some(0));
    assert_eq!(run_with_input(&["sh", "-c", "exit 7"], b"").0, Some(7));
    assert_eq!(run_with_input(&["sh", "-c", "kill -TERM $$"], b"").0, Some(143));
    assert_eq!(run_with_input(&["sh", "-c", "kill -KILL $$"], b"").0, Some(137));
}

#[test]
fn run_passes_data_through() {
    assert_eq!(run_with_input(&["cat"], b"abc"), (Some(0), b"abc".to_vec()));
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (code, out) = run_with_input(&["cat"], &big);
    assert_eq!(code, Some(0));
    assert!(out == big, "{} bytes came back for {}", out.len(), big.len());
    // Flags after `--` belong to PROG.
    assert_eq!(run_with_input(&["/bin/echo", "-n", "--grace"], b""), (Some(0), b"--grace".to_vec()));
}

#[test]
fn run_reports_a_missing_program() {
    let (code, _, err) = run_with_input_and_stderr(&["no-such-program-beamport"], b"");
    assert_eq!(code, Some(127));
    assert_eq!(err, "beamport run: no-such-program-beamport: command not found\n");
    let (code, _, err) = run_with_input_and_stderr(&["/no/such/program"], b"");
    assert_eq!(code, Some(127));
    assert_eq!(err, "beamport run: enoent: /no/such/program: no such file\n");
}

// ---- beamport open: a port's program and its descendants -------------------------------------

#[test]
fn open_sigkilled_leaves_no_sleep() {
    let tree = Tree::new("open-kill");
    let spawn =
        format!("env {}={} sh -c 'sleep 1001 & setsid sleep 1002 & exec sleep 1003'", helpers::MARK_VAR, tree.marker);
    let mut cmd = Command::new(helpers::beamport());
    cmd.args(["open", "--spawn", &spawn]).env_remove("BEAMPORT_NO_NAMESPACE");
    let open = Guard::spawn(&mut cmd);
    tree.wait_for(&["1001", "1002", "1003"]);
    kill(open.pid(), libc::SIGKILL);
    tree.assert_gone("beamport open SIGKILLed");
}

/// A host that exits while its launcher has children forked on a spawner thread: those
/// children get SIGTERM first, as every other child does (a child's death signal fires when
/// the thread that forked it ends, so the spawner threads must outlive the sweep).
#[test]
fn children_forked_while_others_run_get_sigterm_first_when_the_host_exits() {
    let mark = std::env::temp_dir().join(format!("beamport-term-first-{}", std::process::id()));
    let _ = std::fs::remove_file(&mark);
    // The handler takes a moment: a SIGKILL right after the SIGTERM (the bug this guards
    // against) cuts it short.
    let script = format!("trap 'sleep 0.2; echo TERM > {}; exit 0' TERM; echo up; sleep 1007 & wait", mark.display());
    let mut cmd = Command::new(helpers::example("busy_host"));
    cmd.args(["/bin/sh", "-c", &script]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut host = Guard::spawn(&mut cmd);
    let mut line = String::new();
    std::io::BufReader::new(host.stdout()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    drop(host.stdin()); // main returns
    assert!(host.wait().success());
    let termed = helpers::wait_until(DEADLINE, || std::fs::read_to_string(&mark).is_ok_and(|s| s.trim() == "TERM"));
    let _ = std::fs::remove_file(&mark);
    assert!(termed, "the program was not sent SIGTERM");
    for sleep in ["1006", "1007"] {
        assert!(helpers::wait_until(DEADLINE, || !sleep_alive(sleep)), "sleep {sleep} outlived its host");
    }
}

/// Whether a `sleep ARG` process runs (zombies aside).
fn sleep_alive(arg: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else { return false };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| helpers::alive(pid) && helpers::cmdline(pid) == format!("sleep {arg}"))
}
