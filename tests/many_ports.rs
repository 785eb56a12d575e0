//! 15,000 concurrent `cat` ports under `ulimit -n 20000`: one fd per port in the host.
//! Its own test binary, so that nothing else shares its fd budget.
//!
//! It takes half a minute or more, so it says on the terminal what it is waiting for: the
//! lines go to stderr directly, past the test harness's capture.

use std::io::Write;
use std::time::Duration;

use beamport::{process, Message, Name, Opt, Port, PortMsg};

#[test]
fn fifteen_thousand_cat_ports_open_echo_and_close() {
    const N: usize = 15_000;
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum.unwrap_or(u64::MAX);
    if hard < (N + 500) as u64 {
        eprintln!("skipped: the hard RLIMIT_NOFILE is {hard}, below {N} ports");
        return;
    }
    let me = process::current();
    let mut ports = Vec::with_capacity(N);
    progress(&format!("opening {N} `cat` ports"));
    for i in 0..N {
        match Port::open(Name::spawn("cat"), [Opt::Binary]) {
            Ok(p) => ports.push(p),
            Err(e) => panic!("port {i} failed: {e} ({})", e.otp_name()),
        }
        if (i + 1) % 5_000 == 0 && i + 1 < N {
            progress(&format!("{} ports open", i + 1));
        }
    }
    progress(&format!("{N} ports open; waiting for each one's echo"));
    for (i, p) in ports.iter().enumerate() {
        p.command(format!("{i:016}")).unwrap();
    }
    let mut echoed = vec![Vec::new(); N];
    let mut done = 0;
    let index: std::collections::HashMap<u64, usize> = ports.iter().enumerate().map(|(i, p)| (p.id(), i)).collect();
    while done < N {
        let m = me.receive_timeout(Duration::from_secs(60)).unwrap().expect("echo");
        let Message::Port(p, PortMsg::Data(d)) = m else { panic!("unexpected {m:?}") };
        let i = index[&p.id()];
        echoed[i].extend_from_slice(d.bytes());
        if echoed[i].len() == 16 {
            done += 1;
        }
    }
    for (i, e) in echoed.iter().enumerate() {
        assert_eq!(e, format!("{i:016}").as_bytes());
    }
    progress("every port echoed; closing them");
    for p in &ports {
        p.close().unwrap();
    }
    assert!(Port::list().is_empty());
}

/// One line on the terminal while the test runs (`eprintln!` would be captured until it ends).
fn progress(what: &str) {
    let _ = writeln!(std::io::stderr(), "    many_ports: {what}…");
}
