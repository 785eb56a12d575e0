//! `set_spawning(Spawning::Launcher)`: a host that reaps any child it has keeps every port
//! program away from its own children. A binary of its own: the choice is per host process,
//! and fixed once beamport starts.

mod common;

use beamport::{process, set_spawning, Message, Name, Opt, Port, PortMsg, Spawning};

#[test]
fn the_launcher_forks_every_program_once_chosen_and_the_choice_then_stays() {
    // Before the first port: chosen, and chosen again.
    set_spawning(Spawning::Opener).unwrap();
    set_spawning(Spawning::Launcher).unwrap();
    let me = process::current();
    let port = Port::open(Name::spawn("sh -c 'sleep 0.1; exit 5'"), [Opt::ExitStatus]).unwrap();
    let pid = port.os_pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let parent: i32 = status.lines().find_map(|l| l.strip_prefix("PPid:")).unwrap().trim().parse().unwrap();
    assert_eq!(parent, common::launcher_pid(), "forked by the host");
    // A host reaping any child finds none of the port's.
    let mut raw = 0;
    // SAFETY: `raw` is a valid out-pointer; the call does not block (WNOHANG).
    let r = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
    assert_eq!(r, -1, "the program is the host's child");
    let msg = common::recv_match(&me, |m| matches!(m, Message::Port(p, PortMsg::ExitStatus(_)) if *p == port));
    assert_eq!(format!("{msg:?}"), format!("{{{port:?}, {{:exit_status, 5}}}}"));
    let why = beamport::doctor::report().unwrap().opener_forks.unwrap_err();
    assert!(why.contains("set_spawning"), "{why}");
    // Too late now: the error says so, and what stays.
    let late = set_spawning(Spawning::Opener).unwrap_err();
    assert_eq!(late.current, Spawning::Launcher);
    assert!(late.to_string().contains("before the first port opens"), "{late}");
}
