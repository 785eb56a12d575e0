//! Framing through real programs: `{:packet, N}`, `{:line, L}` and `:nouse_stdio` with `cat`,
//! `sh -c 'printf …'` and the workspace's `examples/echo.rs` port program.

use std::path::PathBuf;
use std::time::Duration;

use beamport::{process, Message, Name, Opt, Port, PortError, PortMsg, Process, Reason, Request};

const DEADLINE: Duration = Duration::from_secs(10);

fn echo_program() -> PathBuf {
    // target/<profile>/deps/<test> → target/<profile>/examples/echo
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples").join("echo")
}

fn recv(me: &Process) -> Message {
    me.receive_timeout(DEADLINE).unwrap().expect("a message before the deadline")
}

fn printed(me: &Process, n: usize) -> Vec<String> {
    (0..n).map(|_| format!("{:?}", recv(me))).collect()
}

/// All messages until the port's `{:EXIT, port, reason}`, as iex prints them, without the
/// port's number.
fn until_exit(me: &Process, port: &Port) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let m = recv(me);
        let s = format!("{m:?}").replace(&format!("{port:?}"), "P");
        let done = matches!(m, Message::Exit(..));
        out.push(s);
        if done {
            return out;
        }
    }
}

#[test]
fn packet_sizes_round_trip_through_cat() {
    let me = process::current();
    for n in [1u8, 2, 4] {
        let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(n)]).unwrap();
        let max = match n {
            1 => 255,
            2 => 65535,
            _ => 200_000,
        };
        for len in [0, 1, 2, 100, max] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            port.command(payload.clone()).unwrap();
            let m = recv(&me);
            assert_eq!(m.data().expect("one packet").bytes().as_ref(), &payload[..], "packet {n}, {len} bytes");
        }
        port.close().unwrap();
    }
}

#[test]
fn packets_are_split_and_reassembled_whatever_the_os_does() {
    let me = process::current();
    // Three packets in one write, then a packet written a byte at a time.
    let script = r"printf '\000\003abc\000\001d\000\000'; for b in '\000' '\002' h i; do printf $b; sleep 0.01; done";
    let port =
        Port::open(Name::executable("/bin/sh"), [Opt::Binary, Opt::Packet(2), Opt::args(["-c", script])]).unwrap();
    let got = until_exit_with_trap(&me, &port);
    assert_eq!(
        got,
        [
            "{P, {:data, \"abc\"}}",
            "{P, {:data, \"d\"}}",
            "{P, {:data, \"\"}}",
            "{P, {:data, \"hi\"}}",
            "{:EXIT, P, :normal}"
        ]
    );
}

fn until_exit_with_trap(me: &Process, port: &Port) -> Vec<String> {
    let old = me.trap_exit(true);
    let got = until_exit(me, port);
    me.trap_exit(old);
    got
}

#[test]
fn a_truncated_packet_at_eof_is_discarded_as_otp_does() {
    let me = process::current();
    // As on the VM: \0\3abc\0\1d\0 → "abc", "d", then the half header is dropped
    // (docs/otp-semantics.md#packet-framing).
    let port =
        Port::open(Name::spawn(r"printf '\000\003abc\000\001d\000'"), [Opt::Binary, Opt::Packet(2), Opt::ExitStatus])
            .unwrap();
    let got = until_exit_with_trap(&me, &port);
    assert_eq!(got, ["{P, {:data, \"abc\"}}", "{P, {:data, \"d\"}}", "{P, {:exit_status, 0}}", "{:EXIT, P, :normal}"]);
    // Half a body at EOF is dropped too.
    let port = Port::open(Name::spawn(r"printf '\000\000\000\011abc'"), [Opt::Binary, Opt::Packet(4)]).unwrap();
    assert_eq!(until_exit_with_trap(&me, &port), ["{:EXIT, P, :normal}"]);
}

#[test]
fn packet_mode_with_exit_status_and_eof_keeps_otp_order() {
    let me = process::current();
    let port = Port::open(
        Name::spawn(r"printf '\000\000\000\002hi'; exit 3"),
        [Opt::Binary, Opt::Packet(4), Opt::ExitStatus, Opt::Eof],
    )
    .unwrap();
    let got: Vec<String> = printed(&me, 3).iter().map(|s| s.replace(&format!("{port:?}"), "P")).collect();
    assert_eq!(got, ["{P, {:data, \"hi\"}}", "{P, {:exit_status, 0}}", "{P, :eof}"]);
    // :eof keeps the port open; a close then answers :closed.
    assert!(port.is_open());
    port.send(me.pid(), Request::Close);
    assert_eq!(format!("{:?}", recv(&me)), format!("{{{port:?}, :closed}}"));
}

#[test]
fn oversized_commands_function_api_refuses_and_keeps_the_port() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(1)]).unwrap();
    let err = port.command(vec![0u8; 256]).unwrap_err();
    assert!(matches!(err, PortError::PacketTooLarge(_)), "{err:?}");
    assert!(err.to_string().contains("256"), "{err}");
    // The port is still open and nothing was lost.
    port.command(vec![7u8; 255]).unwrap();
    assert_eq!(recv(&me).data().unwrap().bytes().len(), 255);
    let port2 = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(2)]).unwrap();
    assert!(matches!(port2.command(vec![0u8; 65536]), Err(PortError::PacketTooLarge(_))));
    port2.command(vec![1u8; 65535]).unwrap();
    let mut n = 0;
    while n < 65535 {
        n += recv(&me).data().unwrap().bytes().len();
    }
    port.close().unwrap();
    port2.close().unwrap();
}

#[test]
fn oversized_commands_message_api_kills_the_port_with_einval_as_otp() {
    let me = process::current();
    me.trap_exit(true);
    let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(1)]).unwrap();
    port.send(me.pid(), Request::command(vec![0u8; 256]));
    let m = recv(&me);
    assert!(matches!(&m, Message::Exit(_, r) if *r == Reason::atom("einval")), "{m:?}");
    assert!(!port.is_open());
    me.trap_exit(false);
}

#[test]
fn line_mode_splits_strips_crlf_and_chunks_long_lines() {
    let me = process::current();
    let port = Port::open(
        Name::spawn(r"printf 'ab\r\ncd\rde\n\n0123456789\nabcdefghijk\nlast'"),
        [Opt::Binary, Opt::Line(5), Opt::ExitStatus],
    )
    .unwrap();
    let got = until_exit_with_trap(&me, &port);
    assert_eq!(
        got,
        [
            "{P, {:data, {:eol, \"ab\"}}}",
            "{P, {:data, {:eol, \"cd\\rde\"}}}",
            "{P, {:data, {:eol, \"\"}}}",
            "{P, {:data, {:noeol, \"01234\"}}}",
            "{P, {:data, {:eol, \"56789\"}}}",
            "{P, {:data, {:noeol, \"abcde\"}}}",
            "{P, {:data, {:noeol, \"fghij\"}}}",
            "{P, {:data, {:eol, \"k\"}}}",
            "{P, {:exit_status, 0}}",
            "{P, {:data, {:noeol, \"last\"}}}",
            "{:EXIT, P, :normal}",
        ]
    );
}

#[test]
fn line_mode_in_list_mode_prints_charlists() {
    let me = process::current();
    let port = Port::open(Name::spawn("printf 'hello\\n'"), [Opt::Line(80)]).unwrap();
    assert_eq!(format!("{:?}", recv(&me)), format!("{{{port:?}, {{:data, {{:eol, 'hello'}}}}}}"));
}

#[test]
fn partial_lines_wait_for_the_rest() {
    let me = process::current();
    let port =
        Port::open(Name::spawn("sh -c 'printf abc; sleep 0.2; printf \"def\\n\"'"), [Opt::Binary, Opt::Line(80)])
            .unwrap();
    assert_eq!(format!("{:?}", recv(&me)), format!("{{{port:?}, {{:data, {{:eol, \"abcdef\"}}}}}}"));
}

#[test]
fn nouse_stdio_talks_on_fds_3_and_4() {
    let me = process::current();
    let port = Port::open(Name::spawn("sh -c 'read x <&3; echo got:$x >&4'"), [Opt::Binary, Opt::NoUseStdio]).unwrap();
    port.command("hello\n").unwrap();
    assert_eq!(format!("{:?}", recv(&me)), format!("{{{port:?}, {{:data, \"got:hello\\n\"}}}}"));
}

#[test]
fn nouse_stdio_with_every_framing_through_the_echo_program() {
    let me = process::current();
    let echo = echo_program();
    assert!(echo.exists(), "build the examples first: cargo build --examples ({echo:?})");
    for (args, opt) in [
        (vec!["--nouse-stdio"], Opt::Stream),
        (vec!["--nouse-stdio", "--packet", "1"], Opt::Packet(1)),
        (vec!["--nouse-stdio", "--packet", "2"], Opt::Packet(2)),
        (vec!["--nouse-stdio", "--packet", "4"], Opt::Packet(4)),
        (vec!["--nouse-stdio", "--line"], Opt::Line(100)),
    ] {
        let line = matches!(opt, Opt::Line(_));
        let port = Port::open(
            Name::executable(&echo),
            [Opt::Binary, opt.clone(), Opt::NoUseStdio, Opt::ExitStatus, Opt::args(args.clone())],
        )
        .unwrap();
        port.command(if line { "one\n" } else { "one" }).unwrap();
        let m = recv(&me);
        let d = m.data().expect("echo");
        assert_eq!(d.bytes().as_ref(), b"one", "{args:?}");
        if line {
            assert_eq!(d.eol(), Some(true));
        }
        port.close_input().unwrap();
        let m = recv(&me);
        assert!(matches!(m, Message::Port(_, PortMsg::ExitStatus(s)) if s.success()), "{args:?}: {m:?}");
    }
}

#[test]
fn the_echo_program_echoes_big_packets_both_ways() {
    let me = process::current();
    let port =
        Port::open(Name::executable(echo_program()), [Opt::Binary, Opt::Packet(4), Opt::args(["--packet", "4"])])
            .unwrap();
    for len in [0usize, 1, 65536, 1 << 20] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        port.command(payload.clone()).unwrap();
        assert_eq!(recv(&me).data().unwrap().bytes().as_ref(), &payload[..]);
    }
    port.close().unwrap();
}

/// `{:packet_size, n}`: a packet of n bytes passes, and a header announcing n + 1 ends the
/// port with `:emsgsize` after the packets before it, as gen_tcp's socket does.
#[test]
fn packet_size_lets_its_size_through_and_ends_the_port_past_it() {
    let me = process::current();
    me.trap_exit(true);
    let program = r#"sh -c "printf '\0\0\4\0'; head -c 1024 /dev/zero; printf '\0\0\4\1'; exec cat /dev/zero""#;
    let opts = [Opt::Binary, Opt::Packet(4), "{:packet_size, 1024}".parse().unwrap()];
    let port = Port::open(Name::spawn(program), opts).unwrap();
    let first = recv(&me);
    assert_eq!(first.data().expect("the 1024-byte packet").bytes().len(), 1024);
    assert_eq!(until_exit(&me, &port), ["{:EXIT, P, :emsgsize}"]);
    me.trap_exit(false);

    let e = Port::open(Name::spawn("cat"), [Opt::Packet(4), Opt::PacketSize(Some(0))]).unwrap_err();
    assert_eq!(e.otp_name(), "badarg");
    assert_eq!("{:packet_size, :infinity}".parse::<Opt>().unwrap(), Opt::PacketSize(None));
}
