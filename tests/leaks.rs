//! Nothing leaks: after 200 ports opened and closed in every way the semantics tests use,
//! this process has the fds and threads it started with, and the launcher has no child
//! left.
//!
//! One test in its own binary: fd, thread and child counts are process-wide, so nothing may
//! run beside it.

mod common;

use std::time::Duration;

use beamport::{process, Message, Name, Opt, Port, PortMsg, Reason, Request};
use common::*;

/// Threads of this process.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").expect("/proc/self/task").count()
}

/// What this process's open fds name, the listing's own handle included.
fn fd_targets() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .collect()
}

/// The fds that a port holds while the engine has not let it go: its socket, and the pidfd of
/// a program forked here. The launcher's socket is among them.
fn port_fds() -> Vec<String> {
    let mut fds: Vec<String> =
        fd_targets().into_iter().filter(|t| t.starts_with("socket:") || t == "anon_inode:[pidfd]").collect();
    fds.sort_unstable();
    fds
}

/// One port, opened and closed the `i`-th way.
fn cycle(i: usize) {
    let me = process::current();
    let quick = Opt::Grace(Duration::from_millis(50), Duration::from_millis(50));
    match i % 8 {
        // Port.close/1 after a round trip.
        0 => {
            let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
            port.command("ping").unwrap();
            assert_eq!(recv_bytes(&me, &port, 4), b"ping");
            port.close().unwrap();
        }
        // {self(), :close} → :closed.
        1 => {
            let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
            port.send(me.pid(), Request::Close);
            assert_eq!(recv_dbg(&me), from_port(&port, ":closed"));
        }
        // The program exits: EOF closes the port, with a status first.
        2 => {
            let port = Port::open(Name::spawn("true"), [Opt::ExitStatus]).unwrap();
            assert_eq!(recv_dbg(&me), from_port(&port, "{:exit_status, 0}"));
            let r = port.monitor();
            let reason = recv_down(&me, r);
            assert!(matches!(reason, Reason::Normal | Reason::Noproc), "{reason:?}");
        }
        // exit(port, :kill) on a program that ignores its input; the owner, linked and
        // not trapping, dies with :killed.
        3 => {
            let (_owner, port) = spawn_owner(Name::spawn("sleep 30"), vec![quick], false);
            let r = port.monitor();
            process::exit(&port, Reason::Kill);
            assert_eq!(recv_down(&me, r), Reason::Killed);
            assert_eq!(recv_report(&me), Report::Exited(Reason::Killed));
        }
        // The owner, another process, dies.
        4 => {
            let (owner, port) = spawn_owner(Name::spawn("cat"), vec![], false);
            let r = port.monitor();
            process::send(owner, Stop);
            assert_eq!(recv_down(&me, r), Reason::Normal);
        }
        // Half-close, then the program's own exit.
        5 => {
            let port = Port::open(Name::spawn("wc -c"), [Opt::Binary, Opt::ExitStatus, Opt::Eof]).unwrap();
            port.command("abc").unwrap();
            port.close_input().unwrap();
            let (out, status) = recv_all_data(&me, &port);
            assert_eq!(String::from_utf8(out).unwrap().trim(), "3");
            assert!(matches!(status, Message::Port(_, PortMsg::ExitStatus(_))), "{status:?}");
            assert_eq!(recv_dbg(&me), from_port(&port, ":eof"));
            port.close().unwrap();
        }
        // A spawn error (no port) and a missing program (a port that exits 127).
        6 => {
            assert!(Port::open(Name::executable("/nonexistent/prog"), []).is_err());
            let port = Port::open(Name::spawn("nonexistent_prog_xyz"), [Opt::ExitStatus, Opt::StderrToStdout]).unwrap();
            let (_, status) = recv_all_data(&me, &port);
            assert_eq!(format!("{status:?}"), from_port(&port, "{:exit_status, 127}"));
        }
        // A port closed while the program still runs: the kill ladder ends it.
        _ => {
            let port = Port::open(Name::spawn("sh -c 'sleep 30 & sleep 30'"), [quick]).unwrap();
            port.close().unwrap();
        }
    }
    let _ = me.flush();
}

#[test]
fn two_hundred_ports_leave_nothing_behind() {
    // Start the engine and warm every lazy buffer and thread up before measuring.
    let launcher = launcher_pid();
    let engine_fds = port_fds();
    cycle(0);
    assert!(wait_until(DEADLINE, || port_processes().is_empty()), "left after warm-up: {:?}", port_processes());
    // The engine lets a closed port's fds go on its own thread, after `close` returns.
    assert!(
        wait_until(DEADLINE, || port_fds() == engine_fds),
        "the warm-up port's fds are still open: {:?}",
        fd_targets()
    );
    let fds = fd_count();
    let threads = thread_count();

    for i in 0..200 {
        cycle(i);
    }
    assert!(Port::list().is_empty(), "ports still open: {:?}", Port::list());

    let deadline = DEADLINE + Duration::from_secs(1);
    assert!(
        wait_until(deadline, || port_processes().is_empty()),
        "port programs (launcher {launcher}) left: {:?}",
        port_processes()
    );
    assert!(wait_until(deadline, || fd_count() == fds), "fds: {fds} before, {} after: {:?}", fd_count(), fd_targets());
    assert!(wait_until(deadline, || thread_count() == threads), "threads: {threads} before, {} after", thread_count());
}
