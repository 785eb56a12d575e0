//! Flow control both ways: busy ports suspend senders (host → child, as OTP), and the read
//! window stops reading a child whose output the owner does not take (child → host, which
//! OTP lacks). Every wait is on an event with a deadline.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use beamport::{process, CommandFlags, Item, ItemValue, Message, Name, Opt, Port, PortMsg, Reason};

const DEADLINE: Duration = Duration::from_secs(10);

fn queue_size(port: &Port) -> u64 {
    match port.info_item(Item::QueueSize) {
        Some(ItemValue::Int(n)) => n,
        other => panic!("queue_size: {other:?}"),
    }
}

/// Waits until `cond` holds, polling; panics after the deadline.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Stops the port's program and waits until the kernel shows it stopped (signals travel
/// through the launcher, so they arrive a little later).
fn stop(port: &Port) {
    port.signal(libc::SIGSTOP).unwrap();
    let pid = port.os_pid().unwrap();
    wait_until("the program to stop", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
    });
}

/// Fills a stopped `cat`'s socket and the port's queue past the high limit.
fn make_busy(port: &Port) {
    stop(port);
    let chunk = vec![b'x'; 4096];
    // The socket buffer takes a few hundred KiB; the queue then grows past 8192 bytes.
    for _ in 0..10_000 {
        if !port.command_with(chunk.clone(), CommandFlags { nosuspend: true, force: false }).unwrap() {
            return;
        }
    }
    panic!("the port never became busy");
}

#[test]
fn busy_port_suspends_and_resumes_sender_and_nosuspend_refuses() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat > /dev/null"), [Opt::Binary, Opt::ExitStatus]).unwrap();
    make_busy(&port);
    assert!(queue_size(&port) >= 8192, "queue above the high limit");
    // nosuspend: refused, nothing queued.
    let before = queue_size(&port);
    let sent = port.command_with("more", CommandFlags { nosuspend: true, force: false }).unwrap();
    assert!(!sent);
    assert_eq!(queue_size(&port), before);
    // force: notsup on spawn ports, as OTP.
    assert!(matches!(
        port.command_with("x", CommandFlags { nosuspend: false, force: true }),
        Err(beamport::PortError::NotSup)
    ));
    // A plain command suspends its caller until the queue drains below the low limit.
    let (tx, rx) = mpsc::channel();
    let p2 = port.clone();
    let t = std::thread::spawn(move || {
        p2.command("last").unwrap();
        tx.send(()).unwrap();
    });
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "the sender must wait while the port is busy");
    port.signal(libc::SIGCONT).unwrap();
    rx.recv_timeout(DEADLINE).expect("the sender resumes once the queue drains");
    t.join().unwrap();
    port.close_input().unwrap();
    let m = me.receive_timeout(DEADLINE).unwrap().expect("exit status");
    assert!(matches!(m, Message::Port(_, PortMsg::ExitStatus(s)) if s.success()), "{m:?}");
}

#[test]
fn busy_limits_disabled_never_suspends() {
    let port = Port::open(Name::spawn("cat > /dev/null"), [Opt::BusyLimitsPort(None)]).unwrap();
    stop(&port);
    let chunk = vec![b'y'; 65536];
    for _ in 0..128 {
        assert!(port.command_with(chunk.clone(), CommandFlags { nosuspend: true, force: false }).unwrap());
    }
    assert!(queue_size(&port) > 1_000_000);
    port.signal(libc::SIGCONT).unwrap();
    port.close().unwrap();
}

#[test]
fn accepted_commands_arrive_complete_and_in_order_under_backpressure() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::ReadWindow(Some(32 * 1024))]).unwrap();
    let writer = {
        let port = port.clone();
        std::thread::spawn(move || {
            for i in 0..20_000u32 {
                port.command(format!("{i:08}\n")).unwrap();
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < 20_000 * 9 {
        let m = me.receive_timeout(DEADLINE).unwrap().expect("data");
        got.extend_from_slice(m.data().expect("data message").bytes());
    }
    writer.join().unwrap();
    let expected: Vec<u8> = (0..20_000u32).flat_map(|i| format!("{i:08}\n").into_bytes()).collect();
    assert_eq!(got, expected);
    port.close().unwrap();
}

#[test]
fn read_window_stops_reading_until_the_owner_takes_data() {
    let me = process::current();
    let window = 64 * 1024;
    let total = 8 * 1024 * 1024;
    let port = Port::open(
        Name::spawn(format!("head -c {total} /dev/zero")),
        [Opt::Binary, Opt::ExitStatus, Opt::ReadWindow(Some(window))],
    )
    .unwrap();
    // The port reads until the window is full, then stops: the mailbox holds about one
    // window, the child is blocked on a full socket, and the port's input counter stalls.
    let input = || match port.info_item(Item::Input) {
        Some(ItemValue::Int(n)) => n,
        other => panic!("{other:?}"),
    };
    wait_until("the window to fill", || input() >= window as u64);
    let mut last = input();
    let mut stable = 0;
    wait_until("reading to stop", || {
        let now = input();
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
        stable >= 50
    });
    assert!(last < total as u64, "reading stopped before the end ({last} of {total})");
    assert!(last <= (window + 1024 * 1024) as u64, "at most a window plus one read: {last}");
    // Taking the data resumes reading; every byte arrives, then the exit status.
    let mut n = 0;
    loop {
        match me.receive_timeout(DEADLINE).unwrap().expect("message") {
            Message::Port(_, PortMsg::Data(d)) => n += d.bytes().len(),
            Message::Port(_, PortMsg::ExitStatus(s)) => {
                assert!(s.success());
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(n, total);
}

#[test]
fn unbounded_read_window_reads_everything_eagerly() {
    let me = process::current();
    let total = 4 * 1024 * 1024;
    let port = Port::open(
        Name::spawn(format!("head -c {total} /dev/zero")),
        [Opt::Binary, Opt::ExitStatus, Opt::ReadWindow(None)],
    )
    .unwrap();
    // Without a window the port reads to EOF although nobody takes the data (OTP's way).
    let m = me
        .receive_match(|m| matches!(m, Message::Port(_, PortMsg::ExitStatus(_))), Some(DEADLINE))
        .unwrap()
        .expect("exit status without taking any data");
    assert!(m.port() == Some(&port));
    let n: usize = me.flush().unwrap().iter().filter_map(|m| m.data()).map(|d| d.bytes().len()).sum();
    assert_eq!(n, total);
}

/// The host's resident memory, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
    kib * 1024
}

fn port_memory(port: &Port) -> Option<u64> {
    match port.info_item(Item::Memory) {
        Some(ItemValue::Int(n)) => Some(n),
        None => None,
        other => panic!("memory: {other:?}"),
    }
}

/// A `{:packet, 4}` header that claims 2 GiB, followed by an endless body: the port ends
/// with `:emsgsize` as soon as the header is read (the default `{:packet_size, _}` is
/// 64 MiB), and neither the port nor the host buffers the body meanwhile.
#[test]
fn a_packet_header_over_the_packet_size_ends_the_port_with_emsgsize() {
    let me = process::current();
    me.trap_exit(true);
    let rss_before = rss_bytes();
    let port = Port::open(
        Name::spawn(r#"sh -c "printf '\177\377\377\377'; exec cat /dev/zero""#),
        [Opt::Binary, Opt::Packet(4)],
    )
    .unwrap();
    let end = Instant::now() + DEADLINE;
    let exit = loop {
        match me.receive_timeout(Duration::from_millis(5)).unwrap() {
            Some(m) => break m,
            None => {
                // The host's memory, not the port's: a port reading a packet holds its lock.
                let grown = rss_bytes().saturating_sub(rss_before);
                assert!(grown < 256 << 20, "the host buffers a packet its header claims: {grown} bytes more");
                assert!(Instant::now() < end, "the port still reads its program's endless packet");
            }
        }
    };
    assert!(matches!(&exit, Message::Exit(_, why) if *why == Reason::atom("emsgsize")), "{exit:?}");
    assert_eq!(port_memory(&port), None, "the port is gone");
    me.trap_exit(false);
}

/// Empty packets (`{:packet, 4}` reading `/dev/zero`: a zero-length header after another)
/// and empty lines (`yes ''` in `{:line, 80}`) cost the host a message each; they count
/// against the read window like data, so an owner that takes nothing stops the reading at a
/// window's worth of messages: 64 KiB of 56-byte messages.
#[test]
fn empty_packets_and_lines_count_against_the_read_window() {
    // `yes` blocked on a full socket when its port closes gets EPIPE (the kernel sends no
    // SIGPIPE to a writer woken so), and says so on stderr: not this test's business.
    for (program, framing) in [("cat /dev/zero", Opt::Packet(4)), ("yes '' 2>/dev/null", Opt::Line(80))] {
        let queued = messages_when_reading_stops(program, framing.clone());
        assert!(queued <= 64 * 1024 / 56 + 1, "{program}, {framing:?}: {queued} messages wait");
    }
}

/// How many messages wait in the mailbox of an owner that takes none when its port stops
/// reading `program`, and that the port ends with the owner.
fn messages_when_reading_stops(program: &'static str, framing: Opt) -> usize {
    // The owner is a process of its own that takes nothing and waits on a channel, not on
    // its mailbox; dropping `stop` (also when this test fails) ends it, and its port.
    let (tx, rx) = mpsc::channel();
    let (stop, stopped) = mpsc::channel::<()>();
    process::spawn(move |me| {
        let opts = [Opt::Binary, framing, Opt::ReadWindow(Some(64 * 1024))];
        let port = Port::open(Name::spawn(program), opts).unwrap();
        tx.send((me.clone(), port)).unwrap();
        let _ = stopped.recv();
    });
    let (owner, port) = rx.recv_timeout(DEADLINE).unwrap();
    let mut last = 0;
    let mut stable = 0;
    wait_until("reading to stop", || {
        let queued = owner.message_queue_len();
        assert!(queued < 1_000_000, "{queued} empty frames wait in the mailbox, and reading goes on");
        stable = if queued == last && queued > 0 { stable + 1 } else { 0 };
        last = queued;
        stable >= 50
    });
    let r = process::monitor(&port);
    drop(stop);
    let me = process::current();
    let down = me.receive_timeout(DEADLINE).unwrap().expect("the port ends with its owner");
    assert!(matches!(down, Message::Down(r2, ..) if r2 == r), "{down:?}");
    last
}

/// A packet within `{:packet_size, n}` is buffered as it arrives, in a buffer that grows by
/// doubling: half of an 8 MiB packet holds at least what has arrived, and never more than
/// twice the packet and a read (about 10 MiB here: 4 MiB doubled, and a read).
#[test]
fn a_partial_packet_is_held_within_twice_the_packet_size() {
    let program = r#"sh -c "printf '\0\200\0\0'; head -c 4194304 /dev/zero; exec cat""#;
    let opts = [Opt::Binary, Opt::Packet(4), Opt::PacketSize(Some(8 << 20))];
    let port = Port::open(Name::spawn(program), opts).unwrap();
    let input = || match port.info_item(Item::Input) {
        Some(ItemValue::Int(n)) => n,
        other => panic!("{other:?}"),
    };
    wait_until("half the packet", || input() == 4 + (4 << 20));
    let held = port_memory(&port).unwrap();
    assert!(held >= 4 << 20, "the half packet is held: {held}");
    assert!(held <= 2 * ((8 << 20) + (1 << 20)), "{held} bytes held for a packet of 8 MiB");
    port.close().unwrap();
}
