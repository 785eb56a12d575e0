//! The core's rules, with a fake driver and no OS (no engine, no launcher, no program):
//! close ordering, exit signals, busy and resume, the read window, and the order of the last
//! messages. OS behaviour is tested with real programs in the crate's integration tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::state::Phase;
use super::{After, CommandFlags, Name, Opt, Port, Request, Settings};
use crate::driver::fake::{FakeDriver, Script};
use crate::driver::{Driver, Drivers};
use crate::engine::ChildNews;
use crate::message::{Id, Message, Reason};
use crate::process::{self, Process};

/// A port over a fake driver, opened as `Port::open` would, owned by the calling process.
fn fake_port(opts: &[Opt]) -> (Port, Arc<Mutex<Script>>, Process) {
    let me = process::current();
    let (settings, _) = Settings::parse(&Name::spawn("fake"), opts).unwrap();
    let script = Arc::new(Mutex::new(Script { room: usize::MAX, ..Script::default() }));
    let port = Port::new(me.pid(), "fake".into(), settings, Drivers::Fake(FakeDriver(script.clone())));
    let after = {
        let mut st = port.lock();
        st.phase = Phase::Open;
        assert!(process::add_link(me.pid(), Id::Port(port.clone())));
        assert!(process::adopt(me.pid(), &port));
        let start = st.driver.start(port.id()).unwrap();
        port.on_start(&mut st, start)
    };
    after.run(&port);
    (port, script, me)
}

/// The program sends `data`; the core reads as the reactor would.
fn program_sends(port: &Port, script: &Mutex<Script>, data: &'static [u8]) {
    script.lock().unwrap().input.push_back(Bytes::from_static(data));
    port.on_readable(&mut bytes::BytesMut::new());
}

fn next(me: &Process) -> String {
    format!("{:?}", me.receive_timeout(Duration::ZERO).unwrap().expect("a message"))
}

fn nothing(me: &Process) {
    assert!(me.receive_timeout(Duration::ZERO).unwrap().is_none(), "no message expected");
}

#[test]
fn a_command_reaches_the_program_framed() {
    let (port, script, _me) = fake_port(&[Opt::Packet(2)]);
    port.command("hi").unwrap();
    assert_eq!(script.lock().unwrap().written, b"\0\x02hi");
    assert_eq!(port.info().unwrap().output, 2);
    port.close().unwrap();
}

#[test]
fn close_flushes_queued_output_before_closed_and_starts_the_ladder_at_once() {
    let (port, script, me) = fake_port(&[Opt::Binary]);
    script.lock().unwrap().room = 0;
    port.command("queued").unwrap();
    port.send(me.pid(), Request::Close);
    assert!(!port.is_open());
    nothing(&me); // `:closed` waits for the flush
    {
        let s = script.lock().unwrap();
        assert!(s.released, "the grace period starts at close, whatever is still queued");
        assert!(s.output_stopped, "its output is no longer read while the port flushes");
    }
    script.lock().unwrap().room = 100;
    port.on_writable();
    assert_eq!(script.lock().unwrap().written, b"queued");
    assert_eq!(next(&me), format!("{{{port:?}, :closed}}"));
    assert!(!Port::list().contains(&port));
}

#[test]
fn a_trapping_owner_sees_the_exit_signal_before_closed() {
    let (port, _script, me) = fake_port(&[]);
    me.trap_exit(true);
    port.send(me.pid(), Request::Close);
    assert_eq!(next(&me), format!("{{:EXIT, {port:?}, :normal}}"));
    assert_eq!(next(&me), format!("{{{port:?}, :closed}}"));
    me.trap_exit(false);
}

#[test]
fn a_request_from_another_process_is_badsig_to_the_owner() {
    let (port, _script, me) = fake_port(&[]);
    me.trap_exit(true);
    let stranger = process::spawn(|p| {
        let _ = p.receive();
    });
    port.send(stranger, Request::Close);
    assert!(port.is_open());
    assert_eq!(next(&me), format!("{{:EXIT, {port:?}, :badsig}}"));
    process::send(stranger, "stop");
    port.close().unwrap();
    me.trap_exit(false);
}

#[test]
fn exit_kill_stops_the_port_without_flushing() {
    let (port, script, me) = fake_port(&[]);
    me.trap_exit(true);
    script.lock().unwrap().room = 0;
    port.command("never written").unwrap();
    process::exit(&port, Reason::Kill);
    assert_eq!(next(&me), format!("{{:EXIT, {port:?}, :killed}}"));
    let s = script.lock().unwrap();
    assert!(s.written.is_empty() && s.released);
    me.trap_exit(false);
}

#[test]
fn a_normal_exit_signal_from_a_linked_stranger_is_ignored() {
    let (port, _script, me) = fake_port(&[]);
    let parent = me.pid();
    let p = port.clone();
    let stranger = process::spawn(move |_| {
        process::link(&p).unwrap();
        process::send(parent, "linked");
    }); // ends with :normal: the port, linked to it, stays open
    let r = process::monitor(stranger);
    assert!(matches!(me.receive().unwrap(), Message::User(_)));
    assert!(matches!(me.receive().unwrap(), Message::Down(r2, _, _) if r2 == r));
    assert!(port.is_open());
    port.close().unwrap();
}

#[test]
fn the_owner_s_death_closes_its_ports_even_unlinked() {
    let parent = process::current().pid();
    let owner = process::spawn(move |me| {
        let (port, script, _) = fake_port(&[]);
        process::unlink(&port);
        process::send(parent, (port, script));
        let _ = me.receive(); // until told to die
        me.exit(Reason::atom("gone"));
    });
    let me = process::current();
    let Message::User(u) = me.receive().unwrap() else { panic!() };
    let (port, script) = u.downcast::<(Port, Arc<Mutex<Script>>)>().unwrap();
    let r = port.monitor();
    process::send(owner, "die");
    match me.receive_timeout(Duration::from_secs(5)).unwrap() {
        Some(Message::Down(r2, _, reason)) => assert_eq!((r2, reason), (r, Reason::atom("gone"))),
        other => panic!("{other:?}"),
    }
    assert!(script.lock().unwrap().released);
}

#[test]
fn busy_limits_suspend_and_release_senders() {
    let (port, script, _me) = fake_port(&[Opt::BusyLimitsPort(Some((4, 8)))]);
    script.lock().unwrap().room = 0;
    port.command("12345678").unwrap(); // queued: 8 ≥ high
    let nosuspend = CommandFlags { nosuspend: true, force: false };
    assert!(!port.command_with("x", nosuspend).unwrap(), "busy: refused without waiting");
    script.lock().unwrap().room = 5;
    port.on_writable(); // 3 left: below low
    assert!(port.command_with("x", nosuspend).unwrap(), "no longer busy");
    script.lock().unwrap().room = 100;
    port.on_writable();
    assert_eq!(script.lock().unwrap().written, b"12345678x");
    port.close().unwrap();
}

#[test]
fn a_full_read_window_stops_reading_until_the_owner_takes_its_data() {
    let (port, script, me) = fake_port(&[Opt::Binary, Opt::ReadWindow(Some(4))]);
    program_sends(&port, &script, b"hello");
    script.lock().unwrap().input.push_back(Bytes::from_static(b"world"));
    port.on_readable(&mut bytes::BytesMut::new());
    assert_eq!(script.lock().unwrap().input.len(), 1, "paused: 5 bytes wait, untaken, past the window of 4");
    assert_eq!(next(&me), format!("{{{port:?}, {{:data, \"hello\"}}}}"));
    port.on_readable(&mut bytes::BytesMut::new()); // what the reactor does on `resume`
    assert_eq!(next(&me), format!("{{{port:?}, {{:data, \"world\"}}}}"));
    port.close().unwrap();
}

#[test]
fn exit_status_then_the_last_partial_line_then_eof() {
    let (port, script, me) = fake_port(&[Opt::Binary, Opt::Line(80), Opt::ExitStatus, Opt::Eof]);
    program_sends(&port, &script, b"one\ntwo");
    assert_eq!(next(&me), format!("{{{port:?}, {{:data, {{:eol, \"one\"}}}}}}"));
    script.lock().unwrap().eof = true;
    port.on_readable(&mut bytes::BytesMut::new());
    nothing(&me); // the exit status comes first: it is not known yet
    port.on_child_news(ChildNews::Exited { raw: 3 << 8, group_left: false });
    assert_eq!(next(&me), format!("{{{port:?}, {{:exit_status, 3}}}}"));
    assert_eq!(next(&me), format!("{{{port:?}, {{:data, {{:noeol, \"two\"}}}}}}"));
    assert_eq!(next(&me), format!("{{{port:?}, :eof}}"));
    assert!(port.is_open(), "with :eof the port stays open until closed");
    port.close().unwrap();
    assert!(!Port::list().contains(&port), "closed, and nothing behind it runs");
}

#[test]
fn eof_without_the_eof_option_closes_the_port_normally() {
    let (port, script, me) = fake_port(&[Opt::Binary]);
    me.trap_exit(true);
    script.lock().unwrap().eof = true;
    port.on_readable(&mut bytes::BytesMut::new());
    assert_eq!(next(&me), format!("{{:EXIT, {port:?}, :normal}}"));
    assert!(!port.is_open());
    me.trap_exit(false);
}

#[test]
fn half_close_waits_for_the_queue_then_ends_the_program_s_input() {
    let (port, script, _me) = fake_port(&[]);
    script.lock().unwrap().room = 2;
    port.command("abcd").unwrap();
    port.close_input().unwrap();
    assert!(!script.lock().unwrap().input_closed, "two bytes still queued");
    assert!(port.command("late").is_err());
    script.lock().unwrap().room = 10;
    port.on_writable();
    let s = script.lock().unwrap();
    assert_eq!((s.written.as_slice(), s.input_closed), (&b"abcd"[..], true));
    drop(s);
    port.close().unwrap();
}

#[test]
fn signals_go_to_the_driver_while_the_port_lives() {
    let (port, script, _me) = fake_port(&[]);
    port.signal(libc::SIGTERM).unwrap();
    port.kill().unwrap();
    assert_eq!(script.lock().unwrap().signals, [(libc::SIGTERM, true), (libc::SIGKILL, true)]);
    port.close().unwrap();
    assert!(port.kill().is_err());
}

#[test]
fn a_start_that_fails_ends_the_port_with_the_error_s_name() {
    let (port, _script, me) = fake_port(&[]);
    me.trap_exit(true);
    let after: After = {
        let mut st = port.lock();
        st.behind.started = false;
        port.on_start(&mut st, crate::driver::Start::Failed(libc::EAGAIN))
    };
    after.run(&port);
    assert_eq!(next(&me), format!("{{:EXIT, {port:?}, :eagain}}"));
    me.trap_exit(false);
}

/// With real programs: lending is the core's, but it needs real fds to poll.
mod lending {
    use crate::{process, Name, Opt, Port};

    use super::super::state::WatchMode;

    fn echo(port: &Port, me: &crate::Process, what: &'static str) {
        port.command(what).unwrap();
        let msg = me.receive().unwrap();
        assert_eq!(msg.data().unwrap().as_str(), Some(what));
    }

    /// Without the give-back, `a` would stay lent (its output and exit unread) until the lend
    /// timer took it back, two periods later at most; the exchanges below take far less.
    #[test]
    fn a_lent_port_goes_back_to_the_reactor_once_its_owner_polls_another() {
        let me = process::current();
        let a = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
        echo(&a, &me, "a"); // the owner polled `a` itself: lent
        assert!(matches!(a.lock().watch.mode, WatchMode::Lent { .. }));
        let b = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
        echo(&b, &me, "b"); // now `b` is polled, and `a` is the reactor's again
        assert!(matches!(b.lock().watch.mode, WatchMode::Lent { .. }));
        assert!(matches!(a.lock().watch.mode, WatchMode::Reactor { .. }));
        echo(&a, &me, "a again"); // and works as before
        a.close().unwrap();
        b.close().unwrap();
    }
}
