//! beamport's two fast paths and the rules that keep them invisible:
//!
//! - `Port::open` returns before the launcher has forked (as OTP's `open_port` does with
//!   its forker): the pid, signals, `close` and EOF all wait for the launcher's answer.
//! - An owner blocked in a receive polls the port it last commanded itself; the socket is
//!   lent to it, and the reactor takes it back when the owner stops polling.
//!
//! Every wait is on an event with a deadline.

mod common;

use std::time::Duration;

use beamport::{process, Item, ItemValue, Message, Name, Opt, Port, PortMsg, Reason};
use common::{os_pid_alive, recv, recv_match, wait_until};

const DEADLINE: Duration = Duration::from_secs(10);

fn input_bytes(port: &Port) -> u64 {
    match port.info_item(Item::Input) {
        Some(ItemValue::Int(n)) => n,
        other => panic!("input: {other:?}"),
    }
}

#[test]
fn os_pid_right_after_open_waits_for_the_launcher() {
    let port = Port::open(Name::spawn("cat"), []).unwrap();
    let pid = port.os_pid().expect("a pid as soon as open returns");
    assert!(os_pid_alive(pid));
    match port.info_item(Item::OsPid) {
        Some(ItemValue::OsPid(Some(p))) => assert_eq!(p, pid),
        other => panic!("os_pid: {other:?}"),
    }
    port.close().unwrap();
    assert!(wait_until(DEADLINE, || !os_pid_alive(pid)), "cat {pid} outlived its port");
}

#[test]
fn a_signal_sent_before_the_launcher_answers_is_delivered() {
    let me = process::current();
    let port = Port::open(Name::spawn("sleep 30"), [Opt::ExitStatus]).unwrap();
    port.kill().unwrap(); // most likely before the launcher's reply reached the port
    let msg = recv_match(&me, |m| matches!(m, Message::Port(_, PortMsg::ExitStatus(_))));
    assert_eq!(format!("{msg:?}"), format!("{{{port:?}, {{:exit_status, 137}}}}"));
}

#[test]
fn a_port_closed_before_the_launcher_answers_leaves_no_child() {
    // `sleep` ignores its input's EOF: the kill ladder ends it, without the default grace.
    let ladder = || Opt::Grace(Duration::ZERO, Duration::from_millis(100));
    let ports: Vec<Port> = (0..50).map(|_| Port::open(Name::spawn("sleep 31"), [ladder()]).unwrap()).collect();
    for p in &ports {
        p.close().unwrap();
    }
    assert!(
        wait_until(DEADLINE, || !common::port_processes().iter().any(|(_, cmd)| cmd.contains(&"31".into()))),
        "a sleep outlived its closed port"
    );
}

#[test]
fn many_spawns_in_flight_each_report_their_own_exit_status() {
    let me = process::current();
    let ports: Vec<Port> = (0..200u32)
        .map(|i| Port::open(Name::spawn(format!("sh -c 'exit {}'", i % 7)), [Opt::ExitStatus]).unwrap())
        .collect();
    for _ in 0..ports.len() {
        match recv(&me) {
            Message::Port(p, PortMsg::ExitStatus(s)) => {
                let i = ports.iter().position(|q| *q == p).expect("one of ours");
                assert_eq!(s.code(), i as i32 % 7, "port {i}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn request_reply_through_the_owners_own_poll_keeps_every_byte_in_order() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(2)]).unwrap();
    for i in 0..2000u32 {
        let body = i.to_be_bytes().repeat(1 + (i as usize % 50));
        port.command(body.clone()).unwrap();
        let msg = common::recv_within(&me, DEADLINE);
        assert_eq!(common::expect_data(msg, &port).bytes().as_ref(), &body[..], "reply {i}");
    }
    port.close().unwrap();
}

#[test]
fn a_lent_port_is_read_by_the_reactor_when_its_owner_stops_receiving() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    port.command("a").unwrap();
    common::expect_data(recv(&me), &port);
    port.command("b").unwrap(); // the port is now lent to this thread, which does not receive
    assert!(wait_until(DEADLINE, || input_bytes(&port) == 2), "the reply stayed unread");
    assert_eq!(me.message_queue_len(), 1);
    assert_eq!(common::expect_data(recv(&me), &port).bytes().as_ref(), b"b");
    port.close().unwrap();
}

#[test]
fn a_lent_ports_exit_reaches_a_linked_process_without_the_owner_receiving() {
    let me = process::current();
    let port = Port::open(Name::spawn("sh -c 'read a; echo $a; read b'"), [Opt::Binary]).unwrap();
    port.command("x\n").unwrap();
    common::expect_data(recv(&me), &port);
    let watcher = port.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    process::spawn(move |p| {
        p.trap_exit(true);
        process::link(watcher.clone()).unwrap();
        let _ = tx.send(());
        let msg = p.receive_timeout(DEADLINE).unwrap();
        let _ = tx.send(());
        assert!(matches!(msg, Some(Message::Exit(_, Reason::Normal))), "{msg:?}");
    });
    rx.recv_timeout(DEADLINE).unwrap();
    port.command("y\n").unwrap(); // lent again; the program exits after this line
    rx.recv_timeout(DEADLINE).expect("the linked process saw the port end");
    assert!(!port.is_open());
}

#[test]
fn a_message_from_another_process_wakes_an_owner_polling_its_port() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat > /dev/null"), [Opt::Binary]).unwrap();
    port.command("nothing comes back").unwrap();
    let parent = me.pid();
    process::spawn(move |_| {
        std::thread::sleep(Duration::from_millis(20));
        process::send(parent, "hello");
    });
    let msg = common::recv_within(&me, DEADLINE);
    assert_eq!(format!("{msg:?}"), "\"hello\"");
    port.close().unwrap();
}

#[test]
fn closing_a_port_from_another_thread_ends_its_owners_poll() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::ExitStatus]).unwrap();
    port.command("q").unwrap();
    common::expect_data(recv(&me), &port);
    let other = port.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        other.close().unwrap();
    });
    // The owner polls the port; the close must still reach the owner as the exit signal
    // `:normal` (ignored) and the program must see EOF.
    let pid = port.os_pid();
    assert!(me.receive_timeout(Duration::from_millis(300)).unwrap().is_none());
    assert!(!port.is_open());
    if let Some(pid) = pid {
        assert!(wait_until(DEADLINE, || !os_pid_alive(pid)), "cat {pid} did not see EOF");
    }
}

#[test]
fn a_timed_receive_on_a_polled_port_times_out() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat > /dev/null"), [Opt::Binary]).unwrap();
    port.command("silence").unwrap();
    let start = std::time::Instant::now();
    assert!(me.receive_timeout(Duration::from_millis(50)).unwrap().is_none());
    assert!(start.elapsed() >= Duration::from_millis(50));
    port.close().unwrap();
}

#[test]
fn spin_wait_is_an_option_and_zero_turns_it_off() {
    assert_eq!("{:spin_wait, 0}".parse::<Opt>().unwrap(), Opt::SpinWait(Duration::ZERO));
    assert_eq!("{:spin_wait, 80}".parse::<Opt>().unwrap(), Opt::SpinWait(Duration::from_micros(80)));
    assert!("{:spin_wait, -1}".parse::<Opt>().is_err());
    let me = process::current();
    for spin in [Duration::ZERO, Duration::from_millis(2)] {
        let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::SpinWait(spin)]).unwrap();
        for i in 0..50u8 {
            port.command(vec![i]).unwrap();
            assert_eq!(common::expect_data(common::recv_within(&me, DEADLINE), &port).bytes().as_ref(), [i]);
        }
        port.close().unwrap();
    }
}

/// The owner's thread and the reactor may both read a port (a socket is lent, taken back,
/// lent again); its data still reaches the mailbox in order. Another thread writes, as in
/// `beamport run`, so the owner's receives and the writes race.
#[test]
fn data_stays_in_order_while_the_owner_and_the_reactor_share_the_reading() {
    let me = process::current();
    for (round, chunk) in [7919usize, 65536, 333, 131_072, 1000].into_iter().enumerate() {
        let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Eof]).unwrap();
        let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let (port, big) = (port.clone(), big.clone());
            std::thread::spawn(move || {
                for c in big.chunks(chunk) {
                    port.command(c.to_vec()).unwrap();
                }
                port.close_input().unwrap();
            })
        };
        let mut got = Vec::with_capacity(big.len());
        loop {
            match common::recv_within(&me, DEADLINE) {
                Message::Port(_, PortMsg::Data(d)) => got.extend_from_slice(d.bytes()),
                Message::Port(_, PortMsg::Eof) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        writer.join().unwrap();
        assert_eq!(got.len(), big.len(), "round {round}: bytes before :eof");
        assert!(got == big, "round {round}: the bytes came back out of order");
        port.close().unwrap();
    }
}

#[test]
fn a_reply_read_in_pieces_by_the_owners_spin_is_one_frame() {
    let me = process::current();
    // Half a `{packet, 2}` header, then (on the next command) the rest of the frame. A long
    // spin has the owner read both pieces while it spins, the second joined to the first.
    let script = r#"read a; printf '\000'; read b; printf '\005hello'; read c"#;
    let opts = [Opt::Binary, Opt::Packet(2), Opt::SpinWait(Duration::from_millis(500)), Opt::args(["-c", script])];
    let port = Port::open(Name::executable("/bin/sh"), opts).unwrap();
    port.command(&b"a\n"[..]).unwrap();
    // The owner's spin reads the lone header byte; no frame is complete.
    assert!(me.receive_timeout(Duration::from_millis(600)).unwrap().is_none());
    assert_eq!(input_bytes(&port), 1);
    port.command(&b"b\n"[..]).unwrap();
    let msg = recv(&me);
    assert_eq!(msg.data().map(|d| d.bytes().to_vec()), Some(b"hello".to_vec()), "{msg:?}");
    port.close().unwrap();
}

#[test]
fn lines_stay_in_order_when_a_small_read_window_pauses_the_owners_spin() {
    let me = process::current();
    // Bursts of 20 lines, each burst more than the window: the owner's spin reads a burst,
    // the window pauses the port with lines still to deliver, and the next burst is asked
    // for while they wait.
    let opts = [Opt::Binary, Opt::Line(64), Opt::ReadWindow(Some(64)), Opt::SpinWait(Duration::from_millis(5))];
    let port = Port::open(Name::spawn("cat"), opts).unwrap();
    let line = |n: u32| format!("line {n:08}");
    let burst = |b: u32| -> String { (0..20).map(|i| line(b * 20 + i) + "\n").collect() };
    port.command(burst(0)).unwrap();
    for b in 0..300u32 {
        for i in 0..20u32 {
            if i == 10 && b + 1 < 300 {
                port.command(burst(b + 1)).unwrap();
            }
            let msg = common::recv_within(&me, DEADLINE);
            let data = common::expect_data(msg, &port);
            assert_eq!(data.bytes().as_ref(), line(b * 20 + i).as_bytes(), "burst {b}, line {i}");
        }
    }
    port.close().unwrap();
}
