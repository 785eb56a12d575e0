//! Programs forked by the opening thread itself (`beamport doctor`: "spawning: by the opening
//! thread"), into the launcher's PID namespace, as `posix_spawn` would: they behave as the
//! launcher's children do, and they are the host's children as `posix_spawn`'s are (a host
//! that ignores `SIGCHLD` gets the launcher's instead).
//!
//! A host that is not root gets there through a hop into the launcher's user namespace
//! (`scripts/test.sh` runs this suite as a user too). Where the host may not fork into the
//! launcher's namespace (another tier, or `BEAMPORT_SPAWNING=launcher`), the launcher forks everything and the tests that are about opener
//! children only check that. The host forks only while at most 64 of its programs run, so
//! these tests take turns ([`serial`]), each starting with no program of the host's left.
//!
//! The opener does not wait for a child the opener forked's `execve`: `Port::open` returns while the
//! child may still be setting itself up (its session, its fds), which some tests below aim at.

mod common;

use std::time::Duration;

use beamport::{process, Message, Name, Opt, Port, PortMsg};
use common::{children_with_zombies, os_pid_alive, port_processes, recv_match, wait_until};

const DEADLINE: Duration = Duration::from_secs(10);

fn opener_forks() -> bool {
    beamport::doctor::report().expect("the launcher starts").opener_forks.is_ok()
}

/// One test at a time, once every program an earlier one left has been reaped: the next
/// port is then forked by the host itself where it may.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (host, launcher) = (std::process::id() as i32, common::launcher_pid());
    assert!(
        wait_until(DEADLINE, || children_with_zombies(host).iter().all(|&c| c == launcher)),
        "programs left by an earlier test: {:?}",
        children_with_zombies(host)
    );
    turn
}

/// A kill ladder short enough for a test that closes a port on a running `sleep`.
fn quick_ladder() -> Opt {
    Opt::Grace(Duration::from_millis(20), Duration::from_millis(100))
}

/// `Name:\tvalue` from `/proc/<pid>/status`.
fn status_field(pid: i32, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned()))
}

fn exit_status(me: &process::Process, port: &Port) -> String {
    let msg = recv_match(me, |m| matches!(m, Message::Port(p, PortMsg::ExitStatus(_)) if p == port));
    format!("{msg:?}")
}

#[test]
fn a_child_the_opener_forked_is_the_hosts_in_the_launchers_namespace() {
    let _turn = serial();
    let port = Port::open(Name::spawn("sleep 30"), [quick_ladder()]).unwrap();
    let pid = port.os_pid().unwrap();
    let parent: i32 = status_field(pid, "PPid").unwrap().parse().unwrap();
    let nspids: Vec<i32> = status_field(pid, "NSpid").unwrap().split_whitespace().map(|p| p.parse().unwrap()).collect();
    let launcher = common::launcher_pid();
    let launcher_ns = std::fs::read_link(format!("/proc/{launcher}/ns/pid")).unwrap();
    // Either way the program lives in the launcher's PID namespace (this tier) and dies with it.
    if beamport::doctor::report().unwrap().tier.ends_with("pid-namespace") {
        assert_eq!(std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(), launcher_ns);
        assert_eq!(nspids.len(), 2, "a pid here and one in the launcher's namespace: {nspids:?}");
    }
    if opener_forks() {
        assert_eq!(parent, std::process::id() as i32, "forked by the host");
    } else {
        assert_eq!(parent, launcher, "forked by the launcher");
    }
    port.close().unwrap();
}

#[test]
fn exit_statuses_keep_their_code_and_signal() {
    let _turn = serial();
    let me = process::current();
    for (cmd, expected) in [("true", 0), ("exit 3", 3), ("kill -TERM $$", 143), ("kill -KILL $$", 137)] {
        let port = Port::open(Name::spawn(format!("sh -c '{cmd}'")), [Opt::ExitStatus]).unwrap();
        assert_eq!(exit_status(&me, &port), format!("{{{port:?}, {{:exit_status, {expected}}}}}"), "{cmd}");
    }
    let port = Port::open(Name::spawn("sh -c 'kill -KILL $$'"), [Opt::ExitStatus]).unwrap();
    let _ = exit_status(&me, &port);
    assert_eq!(port.exit_status().and_then(|s| s.signal()), Some(libc::SIGKILL));
}

#[test]
fn signals_reach_an_opener_forked_child_and_its_group() {
    let _turn = serial();
    let me = process::current();
    let port = Port::open(Name::spawn("sleep 30"), [Opt::ExitStatus]).unwrap();
    port.signal(libc::SIGTERM).unwrap();
    assert_eq!(exit_status(&me, &port), format!("{{{port:?}, {{:exit_status, 143}}}}"));
    // The group: a background child of the program gets it too.
    let port = Port::open(Name::spawn("sh -c 'sleep 32 & wait'"), [Opt::ExitStatus]).unwrap();
    assert!(wait_until(DEADLINE, || port_processes().iter().any(|(_, c)| c.last().map(String::as_str) == Some("32"))));
    port.kill().unwrap();
    assert_eq!(exit_status(&me, &port), format!("{{{port:?}, {{:exit_status, 137}}}}"));
    assert!(
        wait_until(DEADLINE, || !port_processes().iter().any(|(_, c)| c.last().map(String::as_str) == Some("32"))),
        "the group's other member survived"
    );
}

#[test]
fn a_closed_ports_running_program_gets_the_kill_ladder_and_is_reaped() {
    let _turn = serial();
    // `sleep` ignores its input's EOF: SIGTERM after the grace period ends it.
    let port = Port::open(Name::spawn("sleep 33"), [Opt::Grace(Duration::from_millis(50), Duration::from_millis(100))])
        .unwrap();
    let pid = port.os_pid().unwrap();
    port.close().unwrap();
    assert!(wait_until(DEADLINE, || !os_pid_alive(pid)), "the ladder did not end it");
    // Reaped, not left a zombie of the host's.
    assert!(
        wait_until(DEADLINE, || !children_with_zombies(std::process::id() as i32).contains(&pid)),
        "{pid} left unreaped"
    );
}

#[test]
fn a_host_that_ignores_sigchld_gets_exit_statuses_through_the_launcher() {
    let _turn = serial();
    let me = process::current();
    // The kernel reaps the children of a host that ignores SIGCHLD by itself, exit status and
    // all: beamport then leaves the forking to the launcher, whose children they are.
    // SAFETY: SIGCHLD's disposition, set back below; while the lock is held no other test of
    // this binary has a program that the host forked.
    let old = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let port = Port::open(Name::spawn("sh -c 'sleep 0.1; exit 5'"), [Opt::ExitStatus]);
    let parent = port.as_ref().ok().and_then(|p| status_field(p.os_pid()?, "PPid"));
    let status = port.as_ref().map(|p| exit_status(&me, p)).map_err(|e| e.to_string());
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGCHLD, old) };
    let port = port.unwrap();
    assert_eq!(parent.unwrap().parse::<i32>().unwrap(), common::launcher_pid(), "forked by the host");
    assert_eq!(status.unwrap(), format!("{{{port:?}, {{:exit_status, 5}}}}"));
}

#[test]
fn a_status_the_host_reaps_itself_still_ends_the_port() {
    let _turn = serial();
    let me = process::current();
    // A program the host forked is the host's child, as one of `posix_spawn` is: a
    // `waitpid` of the host's own can take its status before beamport does. The port then
    // reports it killed (the status is gone), and ends all the same.
    let port = Port::open(Name::spawn("sh -c 'sleep 0.2; exit 5'"), [Opt::ExitStatus]).unwrap();
    let pid = port.os_pid().unwrap();
    let mut raw = 0;
    // SAFETY: `raw` is a valid out-pointer; `pid` is this process's child (or, through the
    // launcher, not: then `waitpid` fails with ECHILD).
    let r = unsafe { libc::waitpid(pid, &mut raw, 0) };
    let status = exit_status(&me, &port);
    if r == pid {
        assert!(opener_forks(), "the host reaped a program of the launcher's");
        assert_eq!(raw, 5 << 8);
        assert_eq!(status, format!("{{{port:?}, {{:exit_status, 137}}}}"));
    } else {
        assert_eq!(status, format!("{{{port:?}, {{:exit_status, 5}}}}"));
    }
    assert!(port.info().is_none(), "the port is still open");
}

#[test]
fn a_host_signal_handler_and_ignored_signals_as_across_exec() {
    let _turn = serial();
    // The child resets handled signals (the kernel does, with clone3) and keeps ignored ones,
    // as `execve` does; SIGPIPE, which Rust ignores, gets its default back.
    let usr1 =
        signal_hook::flag::register(libc::SIGUSR1, std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)))
            .unwrap();
    // SAFETY: setting SIGUSR2 to SIG_IGN for this test process; nothing else here uses it.
    unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
    let port = Port::open(Name::spawn("sleep 34"), [quick_ladder()]).unwrap();
    let pid = port.os_pid().unwrap();
    let mask = |field: &str| u64::from_str_radix(&status_field(pid, field).unwrap(), 16).unwrap();
    let bit = |sig: i32| 1u64 << (sig - 1);
    assert!(wait_until(DEADLINE, || std::fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|e| e.to_string_lossy().contains("sleep"))));
    assert_eq!(mask("SigCgt") & bit(libc::SIGUSR1), 0, "a handler survived");
    if opener_forks() {
        // Forked by the host: its dispositions at the spawn (the launcher's are those it
        // started with).
        assert_ne!(mask("SigIgn") & bit(libc::SIGUSR2), 0, "an ignored signal was reset");
    }
    assert_eq!(mask("SigIgn") & bit(libc::SIGPIPE), 0, "SIGPIPE is still ignored");
    assert_eq!(mask("SigBlk"), 0, "signals blocked in the program");
    port.close().unwrap();
    signal_hook::low_level::unregister(usr1);
    // SAFETY: back to the default.
    unsafe { libc::signal(libc::SIGUSR2, libc::SIG_DFL) };
}

#[test]
fn many_spawns_in_a_row_leave_no_zombie() {
    let _turn = serial();
    let me = process::current();
    let host = std::process::id() as i32;
    let mut pids = Vec::new();
    for i in 0..100 {
        let port = Port::open(Name::spawn(format!("sh -c 'exit {}'", i % 4)), [Opt::ExitStatus]).unwrap();
        pids.push(port.os_pid().unwrap_or(-1));
        assert_eq!(exit_status(&me, &port), format!("{{{port:?}, {{:exit_status, {}}}}}", i % 4));
    }
    // Each was reaped before (or as) its exit status came: none is left a zombie of the host.
    let left = || children_with_zombies(host).into_iter().filter(|c| pids.contains(c)).collect::<Vec<_>>();
    assert!(wait_until(DEADLINE, || left().is_empty()), "unreaped: {:?}", left());
}

#[test]
fn a_program_killed_or_closed_just_after_open_still_ends() {
    let _turn = serial();
    let me = process::current();
    // Right after `Port::open` a child the opener forked may not have made its own group yet: a group
    // signal then reaches it alone, and a close still hands it to the kill ladder.
    for _ in 0..20 {
        let port = Port::open(Name::spawn("sleep 36"), [Opt::ExitStatus]).unwrap();
        port.kill().unwrap();
        assert_eq!(exit_status(&me, &port), format!("{{{port:?}, {{:exit_status, 137}}}}"));
    }
    let mut pids = Vec::new();
    for _ in 0..50 {
        let port = Port::open(Name::spawn("sleep 37"), [quick_ladder()]).unwrap();
        pids.push(port.os_pid().unwrap());
        port.close().unwrap();
    }
    let alive = || port_processes().iter().filter(|(_, c)| c.last().map(String::as_str) == Some("37")).count();
    assert!(wait_until(DEADLINE, || alive() == 0), "{} of 50 programs outlived their ports", alive());
    let host = std::process::id() as i32;
    assert!(
        wait_until(DEADLINE, || children_with_zombies(host).iter().all(|c| !pids.contains(c))),
        "left unreaped: {:?}",
        children_with_zombies(host)
    );
}

#[test]
fn many_spawns_in_flight_report_every_status_and_leave_no_fd() {
    let _turn = serial();
    let me = process::current();
    // Warmed up: this thread's wake-up fd exists from its first wait on.
    let warm = Port::open(Name::spawn("true"), [Opt::ExitStatus]).unwrap();
    let _ = exit_status(&me, &warm);
    let fds = common::fd_count();
    let (total, in_flight) = (400, 64);
    let mut running = std::collections::HashMap::new();
    let mut opened = 0;
    let mut open = |running: &mut std::collections::HashMap<_, i32>| {
        let code = opened % 5;
        let port = Port::open(Name::spawn(format!("sh -c 'exit {code}'")), [Opt::ExitStatus]).unwrap();
        running.insert(port.id(), code);
        opened += 1;
    };
    for _ in 0..in_flight {
        open(&mut running);
    }
    let mut done = 0;
    while done < total {
        match common::recv(&me) {
            Message::Port(port, PortMsg::ExitStatus(status)) => {
                let code = running.remove(&port.id()).expect("a port of this test");
                assert_eq!(status.code(), code, "{port:?}");
                done += 1;
                if done + running.len() < total {
                    open(&mut running);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(wait_until(DEADLINE, || common::fd_count() <= fds), "fds: {} before, {} after", fds, common::fd_count());
    let host = std::process::id() as i32;
    let launcher = common::launcher_pid();
    assert!(
        wait_until(DEADLINE, || children_with_zombies(host).iter().all(|&c| c == launcher)),
        "left unreaped: {:?}",
        children_with_zombies(host)
    );
}

#[test]
fn a_program_whose_input_queued_while_lent_still_reports_its_exit() {
    let _turn = serial();
    let me = process::current();
    // The port starts lent to its opener's thread, which then gives it to another process
    // and never polls it. Commands fill it faster than `cat` reads them, so output queues
    // while the port is lent and unpolled: the reactor takes the socket back for
    // writability, and must then watch the program's exit too (it once did not: the program
    // stayed a zombie and its status never came).
    let port = Port::open(Name::executable("/bin/cat"), [Opt::Binary, Opt::ExitStatus]).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = process::spawn(move |p| {
        let mut got = 0;
        let status = loop {
            match p.receive_timeout(DEADLINE) {
                Ok(Some(Message::Port(_, PortMsg::Data(d)))) => got += d.bytes().len(),
                Ok(Some(Message::Port(_, PortMsg::ExitStatus(s)))) => break Some(s.code()),
                Ok(Some(Message::Port(_, PortMsg::Connected))) => {}
                _ => break None,
            }
        };
        tx.send((got, status)).unwrap();
    });
    port.connect(reader).unwrap();
    let chunk = bytes::Bytes::from(vec![b'x'; 64 << 10]);
    for _ in 0..48 {
        port.command(chunk.clone()).unwrap();
    }
    port.close_input().unwrap();
    let (got, status) = rx.recv().unwrap();
    assert_eq!((got, status), (48 << 16, Some(0)), "data and exit status that reached the new owner");
    drop(me);
    port.close().ok();
}
