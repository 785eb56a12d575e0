//! The host's side of terms: `command_term`, `receive_term` and `send_term` with real port
//! programs, `send_term` against what the VM does with the same messages, and the example
//! port programs over every framing they take.

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use beamport::term::{self, Term};
use beamport::{process, Id, Message, Name, Opt, Port, PortError, PortMsg, Reason, Request};

#[path = "term/mod.rs"]
mod term_support;
use term_support::{atom, script, term_example, tuple};

const WAIT: Duration = Duration::from_secs(10);

fn parse(text: &str) -> Term {
    term::parse(text).unwrap()
}

/// The log lines `send_term` writes, through the `log` facade.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        self.0.lock().unwrap().push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn send_term_does_what_the_vm_does() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let out = Command::new(beamport::find_executable("escript").expect("escript"))
        .arg(script("badsig.escript"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vm = String::from_utf8(out.stdout).unwrap();

    let me = process::current();
    me.trap_exit(true);
    let mut ours = String::new();
    for line in vm.lines() {
        let name = line.split(':').next().unwrap();
        let other = process::spawn(|p| {
            let _ = p.receive();
        });
        let (me_t, other_t) = (Term::from(term::from_pid(me.pid())), Term::from(term::from_pid(other)));
        let msg = |who: &Term, what: Term| tuple(vec![who.clone(), what]);
        let command = |data: Term| tuple(vec![atom("command"), data]);
        let message = match name {
            "hello" => atom("hello"),
            "cmd_atom" => msg(&me_t, command(atom("foo"))),
            "cmd_iolist" => msg(&me_t, command(parse("[<<\"a\">>, \"b\", [99, []]]"))),
            "cmd_improper_iolist" => msg(&me_t, command(parse("[$a, <<\"b\">> | <<\"c\">>]"))),
            "cmd_negative" => msg(&me_t, command(parse("[-1]"))),
            "cmd_256" => msg(&me_t, command(parse("[256]"))),
            "cmd_bits" => msg(&me_t, command(parse("<<1, 2, 1:3>>"))),
            "cmd_extra" => msg(&me_t, parse("{command, <<\"x\">>, extra}")),
            "close_tuple" => msg(&me_t, parse("{close}")),
            "connect_atom" => msg(&me_t, parse("{connect, foo}")),
            "other_cmd" => msg(&other_t, command(parse("<<\"x\">>"))),
            "other_cmd_atom" => msg(&other_t, command(atom("foo"))),
            "other_close" => msg(&other_t, atom("close")),
            "atom_close" => msg(&atom("foo"), atom("close")),
            "close" => msg(&me_t, atom("close")),
            "connect_other" => msg(&me_t, tuple(vec![atom("connect"), other_t.clone()])),
            other => panic!("a case the test does not know: {other}"),
        };
        let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(4)]).unwrap();
        CAPTURE.0.lock().unwrap().clear();
        port.send_term(&message);
        // The last event: the VM's answer to the message, or the echo of a "sync" packet sent
        // after it.
        let last = match name {
            "close" => ":closed",
            "connect_other" => ":connected",
            _ => {
                port.send(me.pid(), Request::command("sync"));
                "{:data, \"sync\"}"
            }
        };
        let mut events = Vec::new();
        loop {
            match me.receive_match(|m| m.port() == Some(&port), Some(WAIT)).unwrap().expect("an event") {
                Message::Port(_, m) if format!("{m:?}") == last => break,
                Message::Port(_, PortMsg::Data(d)) => events.push(format!("data {}", d.as_str().unwrap())),
                Message::Port(_, PortMsg::Closed) => events.push("closed".into()),
                Message::Port(_, PortMsg::Connected) => events.push("connected".into()),
                Message::Exit(Id::Port(_), r) => {
                    events.push(format!("exit {}", format!("{r:?}").trim_start_matches(':')))
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        if CAPTURE.0.lock().unwrap().iter().any(|l| l == "ERROR Bad value on output port 'cat'") {
            events.push("logged".into());
        }
        ours.push_str(&format!("{name}: {}\n", events.join(", ")));
        let _ = port.close();
        process::send(other, "stop");
        let _ = me.receive_match(|m| m.port() == Some(&port), Some(Duration::from_millis(100)));
    }
    assert_eq!(ours, vm);
}

#[test]
fn a_bad_message_kills_an_owner_that_does_not_trap_exits() {
    let me = process::current();
    let (tx, rx) = std::sync::mpsc::channel();
    let owner = process::spawn(move |p| {
        let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
        tx.send(port.clone()).unwrap();
        port.send_term(&atom("hello")); // send(port, :hello)
        let _ = p.receive();
    });
    let r = process::monitor(owner);
    let port = rx.recv().unwrap();
    match me.receive_timeout(WAIT).unwrap() {
        Some(Message::Down(r2, _, reason)) => {
            assert_eq!(r2, r);
            assert_eq!(reason, Reason::atom("badsig"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!port.is_open(), "a port closes with its owner");
    port.send_term(&atom("hello")); // to a closed port: dropped
}

#[test]
fn command_and_receive_terms() {
    let me = process::current();
    let echo = term_example("term_echo");
    for (n, extra) in [(1u8, vec![]), (2, vec![]), (4, vec![]), (4, vec!["nouse_stdio"])] {
        let mut opts = vec![
            Opt::Binary,
            Opt::Packet(n),
            Opt::ExitStatus,
            Opt::args([n.to_string()].into_iter().chain(extra.iter().map(|s| s.to_string()))),
        ];
        if !extra.is_empty() {
            opts.push(Opt::NoUseStdio);
        }
        let port = Port::open(Name::executable(&echo), opts).unwrap();
        let t = parse("{hello, [1, 2.5, <<\"three\">>, #{four => 'Four'}], \"five\"}");
        port.command_term(&t).unwrap();
        assert_eq!(me.receive_term(&port).unwrap(), t, "{{packet, {n}}} {extra:?}");
        // Not a term: the echo says why, and goes on.
        port.command(vec![131, 1]).unwrap();
        assert_eq!(
            term::iex(&me.receive_term(&port).unwrap()).to_string(),
            r#"{:error, {:decode, 1, "at byte 1: unknown tag 1"}}"#
        );
        if n == 1 {
            let big = Term::from(term::Binary::from(vec![0; 300]));
            assert!(matches!(port.command_term(&big), Err(term::Error::Port(PortError::PacketTooLarge(_)))));
        }
        // It exits when its input ends; the wait ends with the exit status.
        port.close_input().unwrap();
        match me.receive_term(&port) {
            Err(term::Error::NotData(Message::Port(_, PortMsg::ExitStatus(s)))) => assert_eq!(s.code(), 0),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn receive_term_errors() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(4)]).unwrap();
    assert!(me.receive_term_timeout(&port, Duration::from_millis(10)).unwrap().is_none());
    port.command(&b"\x83\x6c\xff\xff\xff\xff\x6a"[..]).unwrap();
    match me.receive_term(&port) {
        Err(term::Error::Decode { error, data }) => {
            assert_eq!(error.offset, 2);
            assert_eq!(data.len(), 7);
        }
        other => panic!("{other:?}"),
    }
    // An atom the VM would refuse is not sent.
    let long = atom(&"x".repeat(300));
    assert!(matches!(port.command_term(&long), Err(term::Error::Encode(term::EncodeError::AtomTooLong(300)))));
    // Messages from elsewhere stay in the mailbox.
    process::send(me.pid(), "unrelated");
    port.command_term(&atom("ok")).unwrap();
    assert_eq!(me.receive_term(&port).unwrap(), atom("ok"));
    assert_eq!(format!("{:?}", me.receive_timeout(WAIT).unwrap().unwrap()), "\"unrelated\"");
    port.close().unwrap();
}

#[test]
fn term_server_answers_calls() {
    let me = process::current();
    let server = term_example("term_server");
    let port = Port::open(Name::executable(server), [Opt::Binary, Opt::Packet(4)]).unwrap();
    let call = |n: i32, request: &str| {
        let r = Term::from(term::FixInteger::from(n));
        port.command_term(&tuple(vec![atom("call"), r.clone(), parse(request)])).unwrap();
        let reply = me.receive_term(&port).unwrap();
        match reply {
            Term::Tuple(t) if t.elements.len() == 3 && t.elements[0] == atom("reply") && t.elements[1] == r => {
                term::iex(&t.elements[2]).to_string()
            }
            other => panic!("{}", term::iex(&other)),
        }
    };
    assert_eq!(
        call(1, "{put, <<\"ada\">>, #{name => <<\"Ada\">>, langs => [erlang, <<\"rust\">>], age => 36}}"),
        ":ok"
    );
    assert_eq!(
        call(2, "{get, <<\"ada\">>}"),
        r#"{:ok, %{"age" => 36, "langs" => ["erlang", "rust"], "name" => "Ada"}}"#
    );
    assert_eq!(call(3, "{get, <<\"bob\">>}"), "{:error, :not_found}");
    assert_eq!(call(4, "keys"), r#"{:ok, ["ada"]}"#);
    assert_eq!(
        call(5, "{to_json, <<\"ada\">>}"),
        r#"{:ok, "{\"age\":36,\"langs\":[\"erlang\",\"rust\"],\"name\":\"Ada\"}"}"#
    );
    assert_eq!(call(6, "{delete, <<\"ada\">>}"), ":ok");
    assert_eq!(call(7, "{frob, 1}"), r#"{:error, {:bad_request, "expected a variant of Request, found {:frob, 1}"}}"#);
    port.command_term(&atom("hello")).unwrap();
    assert_eq!(
        term::iex(&me.receive_term(&port).unwrap()).to_string(),
        r#"{:error, {:bad_message, "expected {:call, ref, request}, got :hello"}}"#
    );
    port.close().unwrap();
}

/// On pipes (OTP's ports), a channel raises their capacity to 1 MiB, as beamport's own
/// sockets have: a 64 KB term then passes in one write each way.
#[test]
fn a_channel_on_pipes_grows_them() {
    use std::io::{Read, Write};
    let echo = term_example("term_echo");
    let mut child =
        Command::new(echo).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let (mut stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let t = term::encode(&Term::from(term::Binary::from(vec![7; 100_000]))).unwrap();
    stdin.write_all(&(t.len() as u32).to_be_bytes()).unwrap();
    stdin.write_all(&t).unwrap();
    let mut header = [0; 4];
    stdout.read_exact(&mut header).unwrap();
    let mut reply = vec![0; u32::from_be_bytes(header) as usize];
    stdout.read_exact(&mut reply).unwrap();
    assert_eq!(reply, t);
    assert_eq!(rustix::pipe::fcntl_getpipe_size(&stdin).unwrap(), 1 << 20);
    assert_eq!(rustix::pipe::fcntl_getpipe_size(&stdout).unwrap(), 1 << 20);
    drop(stdin);
    assert!(child.wait().unwrap().success(), "it exits when its input ends");
}
