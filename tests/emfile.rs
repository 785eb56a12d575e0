//! Past the fd limit a port fails with a typed `emfile` error, and the ports already open
//! keep working. The hard limit is lowered first, so this needs only a few hundred ports.

use std::time::Duration;

use beamport::{process, Name, OpenError, Port};

#[test]
fn a_port_over_the_fd_limit_is_emfile_and_others_keep_working() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    setrlimit(Resource::Nofile, Rlimit { current: Some(300), maximum: Some(300) }).expect("lowering RLIMIT_NOFILE");
    let _ = lim;
    let me = process::current();
    let mut ports = Vec::new();
    let err = loop {
        match Port::open(Name::spawn("cat"), []) {
            Ok(p) => ports.push(p),
            Err(e) => break e,
        }
        assert!(ports.len() < 1000, "never hit the limit");
    };
    assert!(matches!(err, OpenError::System { name: "emfile", .. }), "{err:?}");
    assert_eq!(err.otp_name(), "emfile");
    assert!(ports.len() > 250, "about one fd per port: {} ports under 300 fds", ports.len());
    // Every port opened before the error still echoes.
    for p in &ports {
        p.command("ping").unwrap();
    }
    for _ in 0..ports.len() {
        let mut got = 0;
        while got < 4 {
            let m = me.receive_timeout(Duration::from_secs(10)).unwrap().expect("echo");
            got += m.data().unwrap().bytes().len();
        }
    }
    for p in &ports {
        p.close().unwrap();
    }
    // With fds free again, ports open again.
    let p = Port::open(Name::spawn("cat"), []).expect("opens again after closing");
    p.close().unwrap();
}
