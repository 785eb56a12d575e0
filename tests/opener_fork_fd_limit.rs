//! A program the host would fork itself needs one fd more than its port (its pidfd). With only
//! the port's two fds free, the host hands the spawn to the launcher, which needs none: the
//! port opens and works. (Its own binary: it lowers the process's fd limit.)

mod common;

use beamport::{process, Message, Name, Opt, Port, PortMsg};

#[test]
fn one_fd_short_of_a_pidfd_the_launcher_forks_instead() {
    let report = beamport::doctor::report().expect("the launcher starts");
    if let Err(why) = report.opener_forks {
        eprintln!("the host does not fork here ({why}): nothing to fall back from");
        return;
    }
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    setrlimit(Resource::Nofile, Rlimit { current: Some(256), maximum: before.maximum }).expect("lowering the limit");
    let me = process::current();
    // Made now, while fds are free: the receive below needs it.
    let warm = Port::open(Name::spawn("true"), [Opt::ExitStatus]).unwrap();
    common::recv_match(&me, |m| matches!(m, Message::Port(p, PortMsg::ExitStatus(_)) if *p == warm));
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    hog.truncate(hog.len() - 2); // room for the port's socket pair, not for a pidfd
    let port = Port::open(Name::spawn("sh -c 'echo forked; exec cat'"), [Opt::ExitStatus, Opt::Binary]);
    let got = port.as_ref().map_err(|e| e.to_string()).map(|port| {
        let out = common::recv_bytes(&me, port, 7);
        let parent = std::fs::read_to_string(format!("/proc/{}/status", port.os_pid().unwrap()))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PPid:").map(|v| v.trim().parse::<i32>().unwrap())));
        (String::from_utf8_lossy(&out).into_owned(), parent)
    });
    drop(hog);
    setrlimit(Resource::Nofile, before).expect("restoring the limit");
    let port = port.expect("opens with two fds free");
    let (out, parent) = got.unwrap();
    assert_eq!(out, "forked\n");
    assert_eq!(parent, Some(report.launcher_pid), "forked by the launcher, not the host");
    port.close_input().unwrap();
    let status = common::recv_match(&me, |m| matches!(m, Message::Port(p, PortMsg::ExitStatus(_)) if *p == port));
    assert_eq!(format!("{status:?}"), format!("{{{port:?}, {{:exit_status, 0}}}}"));
}
