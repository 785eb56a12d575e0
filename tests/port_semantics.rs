//! OTP's port semantics, checked message by message against real programs.
//!
//! Every test states the OTP behaviour it expects and cites the section of
//! `docs/otp-semantics.md` that describes it (as observed on the real VM).

mod common;

use std::time::Duration;

use beamport::process::DemonitorOpts;
use beamport::{
    find_executable, process, Id, Item, ItemValue, Message, Name, OpenError, Opt, Port, PortError, PortMsg, Reason,
    Request,
};
use common::*;

fn cat() -> Port {
    Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap()
}

fn data(port: &Port, text: &str) -> String {
    from_port(port, &format!("{{:data, {text:?}}}"))
}

/// The payload of the flush tests. On the VM 1 MB is plenty, far more than its 64 KiB pipes
/// hold; beamport's port sockets buffer up to 2 MiB (1 MiB `SO_SNDBUF`, doubled by Linux), so
/// 8 MB are needed to keep most of it in the port's own queue.
const PENDING: usize = 8_000_000;

/// A port whose program sleeps 1 s and then copies its input into `file`, with [`PENDING`] bytes queued.
fn slow_sink(file: &TempPath, opts: Vec<Opt>) -> Port {
    let port = Port::open(Name::spawn(format!("sh -c 'sleep 1; cat > {}'", file.as_str())), opts).unwrap();
    port.command(vec![b'x'; PENDING]).unwrap(); // one command: accepted at once, then busy
    assert!(
        matches!(port.info_item(Item::QueueSize), Some(ItemValue::Int(n)) if n > 0),
        "test precondition: output must be pending in the port's queue"
    );
    port
}

#[track_caller]
fn assert_file_len(file: &TempPath, len: usize) {
    let got = std::fs::metadata(file.path()).map(|m| m.len() as usize).unwrap_or(0);
    assert_eq!(got, len, "bytes in {}", file.as_str());
}

// ---------------------------------------------------------------------------------------
// Messages sent to a port

/// `{Other, {:command, _}}` → exit signal `:badsig` to the owner; the port stays open and
/// the data is dropped (docs/otp-semantics.md#non-owner-messages).
#[test]
fn non_owner_command_is_badsig_to_trapping_owner() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    let p = port.clone();
    let other = process::spawn(move |me| p.send(me.pid(), Request::command("dropped")));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":badsig"));
    assert!(port.is_open());
    assert_eq!(port.info_item(Item::Output), Some(ItemValue::Int(0)));
    port.command("kept").unwrap();
    assert_eq!(recv_dbg(&me), data(&port, "kept"));
    no_more_messages(&me, QUIET);
    let _ = other;
}

/// `{Other, :close}` → `:badsig` to the owner; the port stays open
/// (docs/otp-semantics.md#non-owner-messages).
#[test]
fn non_owner_close_is_badsig() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    let p = port.clone();
    process::spawn(move |me| p.send(me.pid(), Request::Close));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":badsig"));
    assert!(port.is_open());
    port.command("still open").unwrap();
    assert_eq!(recv_dbg(&me), data(&port, "still open"));
    no_more_messages(&me, QUIET);
}

/// `{Other, {:connect, _}}` → `:badsig` to the owner; the owner does not change
/// (docs/otp-semantics.md#non-owner-messages).
#[test]
fn non_owner_connect_is_badsig() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    let p = port.clone();
    process::spawn(move |me| p.send(me.pid(), Request::Connect(me.pid())));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":badsig"));
    assert_eq!(port.info_item(Item::Connected), Some(ItemValue::Pid(me.pid())));
    no_more_messages(&me, QUIET);
}

/// A non-trapping owner dies with `:badsig`, and then the port, linked to it, dies with
/// `:badsig` too; its program reads EOF (docs/otp-semantics.md#non-owner-messages).
#[test]
fn badsig_kills_a_non_trapping_owner_and_then_the_port() {
    let me = process::current();
    let (owner, port) = spawn_owner(Name::spawn("cat"), vec![Opt::Binary], false);
    let os_pid = port.os_pid().unwrap();
    let owner_ref = process::monitor(owner);
    let port_ref = port.monitor();
    port.send(me.pid(), Request::command("x")); // me is not the owner
    assert_eq!(recv_down(&me, owner_ref), Reason::atom("badsig"));
    assert_eq!(recv_down(&me, port_ref), Reason::atom("badsig"));
    assert_eq!(recv_report(&me), Report::Exited(Reason::atom("badsig")));
    assert!(port.info().is_none());
    children_of_launcher_gone(os_pid);
    assert!(me.is_alive());
    no_more_messages(&me, QUIET);
}

/// All three messages are checked against the pid *in* the message: another thread can
/// impersonate the owner. `{owner, :close}` then answers the owner: a trapping owner gets
/// `{:EXIT, port, :normal}` and then `:closed` (docs/otp-semantics.md#non-owner-messages).
#[test]
fn impersonated_close_from_another_thread_trapping() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    let (p, owner) = (port.clone(), me.pid());
    process::spawn(move |_| p.send(owner, Request::Close));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));
    assert_eq!(recv_dbg(&me), from_port(&port, ":closed"));
    no_more_messages(&me, QUIET);
    assert!(port.info().is_none());
}

/// The owner's own `{self(), :close}` with nothing queued: a trapping owner gets the data,
/// `{:EXIT, port, :normal}`, then `:closed` (docs/otp-semantics.md#close-ordering).
#[test]
fn close_message_order_for_a_trapping_owner() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    port.send(me.pid(), Request::command("data"));
    assert_eq!(recv_dbg(&me), data(&port, "data"));
    port.send(me.pid(), Request::Close);
    let got = [recv_dbg(&me), recv_dbg(&me)];
    assert_eq!(got, [exit_msg(&port, ":normal"), from_port(&port, ":closed")]);
    no_more_messages(&me, QUIET);
}

/// A non-trapping owner sees only `{port, :closed}` (docs/otp-semantics.md#close-ordering).
#[test]
fn impersonated_close_non_trapping() {
    let me = process::current();
    let port = cat();
    let (p, owner) = (port.clone(), me.pid());
    process::spawn(move |_| {
        p.send(owner, Request::command("impersonated"));
        p.send(owner, Request::Close);
    });
    // The command was accepted (its output may or may not come back before the close:
    // input stops when closing starts).
    let (_, last) = recv_all_data(&me, &port);
    assert_eq!(format!("{last:?}"), from_port(&port, ":closed"));
    assert_eq!(port.info(), None);
    no_more_messages(&me, QUIET);
}

/// `{owner, {:connect, new}}` → `:connected` to the OLD owner; data goes to the new owner;
/// the old owner stays linked and the new one is not linked. The old owner's commands are
/// now `:badsig` to the new owner (docs/otp-semantics.md#connect).
#[test]
fn connect_message() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    let new = spawn_forwarder(true);
    port.send(me.pid(), Request::Connect(new));
    assert_eq!(recv_dbg(&me), from_port(&port, ":connected"));
    assert_eq!(port.info_item(Item::Connected), Some(ItemValue::Pid(new)));
    assert_eq!(port.info_item(Item::Links), Some(ItemValue::Pids(vec![me.pid()])));

    port.command("to the new owner").unwrap();
    assert_eq!(recv_report(&me), Report::Msg(data(&port, "to the new owner")));

    port.send(me.pid(), Request::command("from the old owner"));
    assert_eq!(recv_report(&me), Report::Msg(exit_msg(&port, ":badsig")));
    assert!(port.is_open());

    port.send(new, Request::command("impersonating the new owner"));
    assert_eq!(recv_report(&me), Report::Msg(data(&port, "impersonating the new owner")));

    // Closing: the link to the old owner fires; the new owner, not linked, gets nothing.
    port.close().unwrap();
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));
    no_more_reports(&me, QUIET);
    process::send(new, Stop);
    no_more_messages(&me, QUIET);
}

/// `{owner, {:connect, dead_pid}}` is accepted: `:connected`, the port is owned by the dead
/// pid and stays open; OTP's docs say `badsig`, the VM does not check (docs/otp-semantics.md#connect).
#[test]
fn connect_message_to_a_dead_pid_is_accepted() {
    let me = process::current();
    let dead = process::spawn(|_| {});
    let r = process::monitor(dead);
    let _ = recv_down(&me, r);
    assert!(wait_until(DEADLINE, || !dead.is_alive()));
    let port = cat();
    port.send(me.pid(), Request::Connect(dead));
    assert_eq!(recv_dbg(&me), from_port(&port, ":connected"));
    assert!(port.is_open());
    assert_eq!(port.info_item(Item::Connected), Some(ItemValue::Pid(dead)));
    port.command("goes nowhere").unwrap();
    no_more_messages(&me, QUIET);
    port.close().unwrap();
}

/// Any message to a closed port is silently dropped; `send` does not fail
/// (docs/otp-semantics.md#messages-to-a-closed-port).
#[test]
fn messages_to_a_closed_port_are_dropped() {
    let me = process::current();
    let port = cat();
    port.close().unwrap();
    let other = spawn_forwarder(false);
    for from in [me.pid(), other] {
        port.send(from, Request::command("x"));
        port.send(from, Request::Connect(other));
        port.send(from, Request::Close);
    }
    no_more_messages(&me, QUIET);
    no_more_reports(&me, Duration::ZERO);
    assert!(me.is_alive() && other.is_alive());
    process::send(other, Stop);
}

// ---------------------------------------------------------------------------------------
// The function API

/// `port_command` on a closed port → `badarg` (docs/otp-semantics.md#messages-to-a-closed-port).
#[test]
fn command_on_a_closed_port_is_an_error() {
    let port = cat();
    port.close().unwrap();
    assert!(matches!(port.command("x"), Err(PortError::Closed(_))));
}

/// `port_close` twice → `badarg` (docs/otp-semantics.md#close-ordering).
#[test]
fn close_twice_is_an_error() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    port.close().unwrap();
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal")); // links get :normal
    let err = port.close().unwrap_err();
    assert!(matches!(err, PortError::Closed(_)), "{err:?}");
    assert!(err.to_string().starts_with("badarg"), "{err}");
    no_more_messages(&me, QUIET); // port_close sends no :closed
}

/// `port_close` by a non-owner works; the owner gets `{:EXIT, port, :normal}`
/// (docs/otp-semantics.md#close-ordering).
#[test]
fn close_by_a_non_owner() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    let p = port.clone();
    process::spawn(move |_| p.close().unwrap());
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));
    no_more_messages(&me, QUIET);
}

/// `port_connect(P, DeadPid)` → `badarg` (docs/otp-semantics.md#connect).
#[test]
fn connect_to_a_dead_pid_is_an_error() {
    let me = process::current();
    let dead = process::spawn(|_| {});
    let r = process::monitor(dead);
    let _ = recv_down(&me, r);
    let port = cat();
    assert!(matches!(port.connect(dead), Err(PortError::Badarg(_))));
    assert_eq!(port.info_item(Item::Connected), Some(ItemValue::Pid(me.pid())));
    port.close().unwrap();
    assert!(matches!(port.connect(me.pid()), Err(PortError::Closed(_))));
}

/// `port_connect`: the new owner is linked, the old one stays linked, no message. Killing
/// the new owner then closes the port with `:killed`, which the old owner sees through its
/// link (docs/otp-semantics.md#connect).
#[test]
fn connect_function_links_and_keeps_the_old_link() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    let new = spawn_forwarder(false);
    port.connect(new).unwrap();
    assert_eq!(port.info_item(Item::Links), Some(ItemValue::Pids(vec![me.pid(), new])));
    assert_eq!(port.info_item(Item::Connected), Some(ItemValue::Pid(new)));
    no_more_messages(&me, QUIET);
    port.command("hi").unwrap();
    assert_eq!(recv_report(&me), Report::Msg(data(&port, "hi")));
    process::exit(new, Reason::Kill);
    assert_eq!(recv_report(&me), Report::Exited(Reason::Killed));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":killed"));
    assert!(port.info().is_none());
}

/// `Port.info/1,2` → `nil` once closed; `Port.list/0` lists open ports only
/// (docs/otp-semantics.md#messages-to-a-closed-port).
#[test]
fn info_and_list_follow_the_port() {
    let port = cat();
    assert!(port.info().is_some());
    assert!(Port::list().contains(&port));
    port.close().unwrap();
    assert_eq!(port.info(), None);
    assert_eq!(port.info_item(Item::OsPid), None);
    assert_eq!(port.os_pid(), None);
    assert!(!Port::list().contains(&port));
}

/// `input` / `output` counters: 6 and 6 after "a" + "bc" + "d" + "ef" through `cat`
/// (docs/otp-semantics.md#info-and-counters).
#[test]
fn input_and_output_counters() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), []).unwrap();
    for c in ["a", "bc", "d", "ef"] {
        port.command(c).unwrap();
    }
    assert_eq!(recv_bytes(&me, &port, 6), b"abcdef");
    let info = port.info().unwrap();
    assert_eq!((info.input, info.output), (6, 6));
    port.send(me.pid(), Request::command("g"));
    assert_eq!(recv_bytes(&me, &port, 1), b"g");
    assert_eq!(port.info_item(Item::Output), Some(ItemValue::Int(7)));
    assert_eq!(port.info_item(Item::Input), Some(ItemValue::Int(7)));
}

// ---------------------------------------------------------------------------------------
// Closing with output pending

/// `{owner, :close}` with output queued: `{:EXIT, port, :normal}` comes first, `:closed`
/// after the flush, and the program got every byte (docs/otp-semantics.md#close-ordering).
#[test]
fn close_message_flushes_pending_output() {
    let me = process::current();
    me.trap_exit(true);
    let file = TempPath::in_dir("flush-close-msg");
    let port = slow_sink(&file, vec![]);
    let os_pid = port.os_pid().unwrap();
    port.send(me.pid(), Request::Close);
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));
    assert_eq!(recv_dbg(&me), from_port(&port, ":closed"));
    children_of_launcher_gone(os_pid);
    assert_file_len(&file, PENDING);
    no_more_messages(&me, QUIET);
}

/// Input stops as soon as closing starts: a program that echoes its input while the queue
/// is flushed sends nothing more to the owner, and the close still ends
/// (`{:EXIT, port, :normal}`, then `:closed`) even though the program's writes go unread
/// (docs/otp-semantics.md#close-ordering).
#[test]
fn close_stops_input_while_flushing() {
    let me = process::current();
    me.trap_exit(true);
    let port = Port::open(Name::spawn("sh -c 'sleep 1; cat'"), [Opt::Binary]).unwrap();
    let os_pid = port.os_pid().unwrap();
    port.command(vec![b'e'; PENDING]).unwrap();
    port.send(me.pid(), Request::Close);
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));
    match me.receive_timeout(DEADLINE).unwrap() {
        Some(m) => assert_eq!(format!("{m:?}"), from_port(&port, ":closed")),
        None => panic!(
            "no :closed within {DEADLINE:?}: the port is stuck flushing, its program blocked \
             writing output that nobody reads (OTP stops input when closing starts: the \
             program's writes fail with EPIPE); queue_size = {:?}",
            port.info_item(Item::QueueSize)
        ),
    }
    children_of_launcher_gone(os_pid);
    no_more_messages(&me, QUIET);
}

/// While a closed port flushes, `info` still answers (links already `[]`), the port is still
/// listed, `command`/`close` are `badarg`, and a new monitor gets `:noproc` at once
/// (docs/otp-semantics.md#close-ordering).
#[test]
fn a_flushing_port() {
    let me = process::current();
    let file = TempPath::in_dir("flushing");
    let port = slow_sink(&file, vec![]);
    let os_pid = port.os_pid().unwrap();
    port.close().unwrap();
    // The program reads nothing for 1 s: the port is still flushing meanwhile.
    assert!(matches!(port.info_item(Item::QueueSize), Some(ItemValue::Int(n)) if n > 0));
    assert_eq!(port.info_item(Item::Links), Some(ItemValue::Pids(vec![])));
    assert!(Port::list().contains(&port));
    assert!(matches!(port.command("x"), Err(PortError::Closed(_))));
    assert!(matches!(port.close(), Err(PortError::Closed(_))));
    let r = port.monitor();
    assert_eq!(recv_down(&me, r), Reason::Noproc);
    children_of_launcher_gone(os_pid);
    assert_file_len(&file, PENDING);
}

/// `Port.close/1` returns before the flush ends and sends no `:closed`; the data is still
/// written completely (docs/otp-semantics.md#close-ordering).
#[test]
fn close_function_returns_at_once_and_still_flushes() {
    let me = process::current();
    let file = TempPath::in_dir("flush-close-fn");
    let port = slow_sink(&file, vec![]);
    let os_pid = port.os_pid().unwrap();
    port.close().unwrap();
    assert!(!port.is_open());
    children_of_launcher_gone(os_pid);
    assert_file_len(&file, PENDING);
    no_more_messages(&me, QUIET);
}

/// An owner killed with data queued: the port closes with `:killed` and still flushes
/// (docs/otp-semantics.md#owner-death).
#[test]
fn owner_killed_with_output_pending_still_flushes() {
    let me = process::current();
    let file = TempPath::in_dir("flush-owner-killed");
    let cmd = format!("sh -c 'sleep 1; cat > {}'", file.as_str());
    let (owner, port) = spawn_owner(Name::spawn(cmd), vec![], false);
    let os_pid = port.os_pid().unwrap();
    port.command(vec![b'x'; PENDING]).unwrap();
    let r = port.monitor();
    process::exit(owner, Reason::Kill);
    assert_eq!(recv_down(&me, r), Reason::Killed);
    assert_eq!(recv_report(&me), Report::Exited(Reason::Killed));
    children_of_launcher_gone(os_pid);
    assert_file_len(&file, PENDING);
}

/// `exit(port, :kill)` drops the queue; `exit(port, other)` flushes it
/// (docs/otp-semantics.md#exit-signals-to-a-port).
#[test]
fn exit_kill_drops_the_queue_exit_custom_flushes_it() {
    let me = process::current();
    me.trap_exit(true);
    let dropped = TempPath::in_dir("exit-kill");
    let port = slow_sink(&dropped, vec![]);
    let os_pid = port.os_pid().unwrap();
    let p = port.clone();
    process::spawn(move |_| process::exit(&p, Reason::Kill));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":killed"));
    children_of_launcher_gone(os_pid);
    let len = std::fs::metadata(dropped.path()).map(|m| m.len()).unwrap_or(0);
    assert!(len < PENDING as u64, "exit(port, :kill) flushed all {len} bytes");

    let flushed = TempPath::in_dir("exit-custom");
    let port = slow_sink(&flushed, vec![]);
    let os_pid = port.os_pid().unwrap();
    let p = port.clone();
    process::spawn(move |_| process::exit(&p, Reason::atom("custom")));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":custom"));
    children_of_launcher_gone(os_pid);
    assert_file_len(&flushed, PENDING);
}

// ---------------------------------------------------------------------------------------
// Owner death and exit signals

/// The owner ends normally → the port closes with `:normal`; `cat` reads EOF and exits;
/// monitors get `:DOWN` with `:normal` (docs/otp-semantics.md#owner-death).
#[test]
fn owner_ends_normally() {
    let me = process::current();
    let (owner, port) = spawn_owner(Name::spawn("cat"), vec![], false);
    let os_pid = port.os_pid().unwrap();
    let r = port.monitor();
    process::send(owner, Stop);
    assert_eq!(recv_down(&me, r), Reason::Normal);
    assert!(port.info().is_none());
    children_of_launcher_gone(os_pid);
}

/// The owner panics → the port closes with the owner's reason (docs/otp-semantics.md#owner-death).
#[test]
fn owner_panics() {
    let me = process::current();
    let (owner, port) = spawn_owner(Name::spawn("cat"), vec![], false);
    let os_pid = port.os_pid().unwrap();
    let r = port.monitor();
    process::send(owner, Crash);
    let reason = recv_down(&me, r);
    assert_eq!(format!("{reason:?}"), "{:panic, \"boom\"}");
    children_of_launcher_gone(os_pid);
}

/// The owner killed with `:kill` → the port closes with `:killed` (docs/otp-semantics.md#owner-death).
#[test]
fn owner_killed() {
    let me = process::current();
    let (owner, port) = spawn_owner(Name::spawn("cat"), vec![], true); // even a trapping one
    let os_pid = port.os_pid().unwrap();
    let r = port.monitor();
    let down = format!("{{:DOWN, {r:?}, :port, {port:?}, :killed}}");
    process::exit(owner, Reason::Kill);
    assert_eq!(format!("{:?}", recv_match(&me, |m| matches!(m, Message::Down(..)))), down);
    assert_eq!(recv_report(&me), Report::Exited(Reason::Killed));
    children_of_launcher_gone(os_pid);
}

/// The owner exits with a custom reason → the port closes with it (docs/otp-semantics.md#owner-death).
#[test]
fn owner_exits_with_a_reason() {
    let me = process::current();
    let (owner, port) = spawn_owner(Name::spawn("cat"), vec![], false);
    let r = port.monitor();
    process::send(owner, ExitWith(Reason::atom("some_reason")));
    assert_eq!(recv_down(&me, r), Reason::atom("some_reason"));
}

/// `exit(port, :normal)` from a non-owner closes the port, unlike a process, which would
/// ignore it (docs/otp-semantics.md#exit-signals-to-a-port).
#[test]
fn exit_normal_from_a_non_owner_closes_the_port() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    let r = port.monitor();
    let p = port.clone();
    process::spawn(move |_| process::exit(&p, Reason::Normal));
    assert_eq!(recv_down(&me, r), Reason::Normal);
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));
    assert!(port.info().is_none());
    no_more_messages(&me, QUIET);
}

/// `exit(port, :kill)` → links and monitors see `:killed` (docs/otp-semantics.md#exit-signals-to-a-port).
#[test]
fn exit_kill_to_a_port() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    let r = port.monitor();
    process::exit(&port, Reason::Kill);
    assert_eq!(recv_down(&me, r), Reason::Killed);
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":killed"));
    assert!(port.info().is_none());
}

/// A linked non-owner that exits `:normal` leaves the port alive; one that exits `:boom`
/// kills it, and the owner gets `{:EXIT, port, :boom}` (docs/otp-semantics.md#owner-death).
#[test]
fn linked_non_owner_exits() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    let linker = |port: &Port| {
        let p = port.clone();
        let pid = spawn_forwarder_with(false, move |_| process::link(&p).unwrap());
        assert!(wait_until(DEADLINE, || {
            matches!(port.info_item(Item::Links), Some(ItemValue::Pids(l)) if l.contains(&pid))
        }));
        pid
    };
    let calm = linker(&port);
    process::send(calm, Stop);
    assert!(wait_until(DEADLINE, || !calm.is_alive()));
    port.command("alive").unwrap();
    assert_eq!(recv_dbg(&me), data(&port, "alive"));
    assert_eq!(port.info_item(Item::Links), Some(ItemValue::Pids(vec![me.pid()])));

    let angry = linker(&port);
    process::send(angry, ExitWith(Reason::atom("boom")));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":boom"));
    assert_eq!(recv_report(&me), Report::Exited(Reason::atom("boom")));
    assert!(port.info().is_none());
}

/// A process linked to a port dies when the port exits with a non-normal reason, and
/// survives a `:normal` close (docs/otp-semantics.md#links-and-monitors).
#[test]
fn a_linked_process_follows_the_port() {
    let me = process::current();
    let port = cat();
    let p = port.clone();
    let survivor = spawn_forwarder_with(false, move |_| process::link(&p).unwrap());
    assert!(wait_until(DEADLINE, || {
        matches!(port.info_item(Item::Links), Some(ItemValue::Pids(l)) if l.contains(&survivor))
    }));
    port.close().unwrap();
    no_more_reports(&me, QUIET);
    assert!(survivor.is_alive());
    process::send(survivor, Stop);

    me.trap_exit(true);
    let port = cat();
    let p = port.clone();
    let victim = spawn_forwarder_with(false, move |_| process::link(&p).unwrap());
    assert!(wait_until(DEADLINE, || {
        matches!(port.info_item(Item::Links), Some(ItemValue::Pids(l)) if l.contains(&victim))
    }));
    process::exit(&port, Reason::atom("boom"));
    assert_eq!(recv_report(&me), Report::Exited(Reason::atom("boom")));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":boom"));
}

/// Linking to a closed port while trapping → `{:EXIT, port, :noproc}`; a monitor of a
/// closed port → `:DOWN` with `:noproc` (docs/otp-semantics.md#links-and-monitors).
#[test]
fn link_and_monitor_a_closed_port() {
    let me = process::current();
    me.trap_exit(true);
    let port = cat();
    port.close().unwrap();
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));
    assert_eq!(format!("{:?}", process::link(&port)), "Ok(())");
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":noproc"));
    let r = port.monitor();
    assert_eq!(recv_dbg(&me), format!("{{:DOWN, {r:?}, :port, {port:?}, :noproc}}"));
}

/// Linking to a closed port from a process that does not trap exits raises `noproc` (OTP 25:
/// `{'EXIT', {noproc, [{erlang, link, [#Port<0.5>], _} | _]}}` from `catch link(P)`): an
/// `Err`, no exit signal, and the caller lives on.
#[test]
fn link_to_a_closed_port_without_trapping_is_an_error() {
    let me = process::current();
    let port = cat();
    port.close().unwrap();
    let victim = spawn_forwarder(false);
    let r = process::monitor(victim);
    let (parent, p) = (me.pid(), port.clone());
    let job = move |_: &process::Process| process::send(parent, Report::Msg(format!("{:?}", process::link(&p))));
    process::send(victim, Job(Box::new(job)));
    assert_eq!(recv_report(&me), Report::Msg(format!("Err(Noproc({port:?}))")));
    no_more_reports(&me, QUIET);
    assert!(victim.is_alive(), "the caller lives on");
    process::send(victim, Stop);
    assert_eq!(recv_down(&me, r), Reason::Normal);
}

/// `Port.monitor/1` → `:DOWN` with the port's reason; `demonitor` removes it and
/// `monitored_by` reflects both (docs/otp-semantics.md#links-and-monitors).
#[test]
fn monitor_and_demonitor_a_port() {
    let me = process::current();
    let port = cat();
    let r1 = port.monitor();
    let r2 = process::monitor(&port);
    assert_eq!(port.info_item(Item::MonitoredBy), Some(ItemValue::Pids(vec![me.pid(), me.pid()])));
    process::demonitor(r2);
    assert_eq!(port.info_item(Item::MonitoredBy), Some(ItemValue::Pids(vec![me.pid()])));
    port.close().unwrap();
    assert_eq!(recv_dbg(&me), format!("{{:DOWN, {r1:?}, :port, {port:?}, :normal}}"));
    no_more_messages(&me, QUIET);
}

/// OTP's `port_SUITE` case `mon_port_origin_dies`: when a process that monitors a port
/// dies, the port's `monitored_by` entry is removed (docs/otp-semantics.md#links-and-monitors).
#[test]
fn a_dead_watcher_leaves_monitored_by() {
    let port = cat();
    let p = port.clone();
    let watcher = spawn_forwarder_with(false, move |_| {
        p.monitor();
    });
    assert_eq!(port.info_item(Item::MonitoredBy), Some(ItemValue::Pids(vec![watcher])));
    process::send(watcher, Stop);
    assert!(wait_until(DEADLINE, || !watcher.is_alive()));
    assert!(
        wait_until(DEADLINE, || port.info_item(Item::MonitoredBy) == Some(ItemValue::Pids(vec![]))),
        "monitored_by still lists the dead watcher: {:?}",
        port.info_item(Item::MonitoredBy)
    );
    port.close().unwrap();
}

/// `port_info/2`'s other items, as OTP 25 answers them on a spawn port:
/// `{:locking, :port_level}`, `{:monitors, []}`, `{:monitored_by, [pid]}`; an item it does not
/// know is `badarg`.
#[test]
fn info_items_locking_monitors_monitored_by_and_badarg() {
    let me = process::current();
    let port = cat();
    let item = |name: &str| name.parse::<Item>().unwrap();
    assert_eq!(port.info_item(item("locking")), Some(ItemValue::Atom("port_level")));
    assert_eq!(format!("{:?}", port.info_item(item(":locking")).unwrap()), ":port_level");
    assert_eq!(port.info_item(item("monitors")), Some(ItemValue::Pids(vec![])));
    let r = port.monitor();
    assert_eq!(port.info_item(item("monitored_by")), Some(ItemValue::Pids(vec![me.pid()])));
    process::demonitor(r);
    assert_eq!(port.info_item(Item::MonitoredBy), Some(ItemValue::Pids(vec![])));
    for name in ["name", "links", "id", "connected", "input", "output", "os_pid", "queue_size", "memory", "parallelism"]
    {
        assert!(port.info_item(item(name)).is_some(), "{name}");
    }
    let bad = "bogus".parse::<Item>().unwrap_err();
    assert!(matches!(&bad, PortError::Badarg(what) if what.contains("bogus")), "{bad}");
    let later = "registered_name".parse::<Item>().unwrap_err();
    assert!(later.to_string().contains("registered names"), "{later}");
    port.close().unwrap();
    for name in ["locking", "monitors", "monitored_by"] {
        assert_eq!(port.info_item(item(name)), None, "{name} of a closed port");
    }
}

/// OTP's guarantee for `demonitor(ref, [:flush])`: once it returns, no `DOWN` for `ref` is
/// in the mailbox or ever comes, even while another process closes the port. The OTP case,
/// 200 times (OTP 25: 0 stray `DOWN`s in 2,000 tries).
#[test]
fn no_down_after_demonitor_flush_while_the_port_closes() {
    let me = process::current();
    let mut strays = 0;
    for _ in 0..200 {
        let port = cat();
        process::unlink(&port);
        let r = port.monitor();
        let (tx, rx) = std::sync::mpsc::channel();
        let closer = port.clone();
        process::spawn(move |_| {
            let _ = closer.close();
            let _ = tx.send(());
        });
        process::demonitor_with(r, DemonitorOpts { flush: true, info: false });
        let flushed = me.receive_match(|m| matches!(m, Message::Down(x, ..) if *x == r), Some(Duration::ZERO));
        assert!(flushed.unwrap().is_none(), "a DOWN left in the mailbox by the flush");
        // `close` delivers the `DOWN`s before it returns: one that comes, has come by now.
        rx.recv_timeout(DEADLINE).expect("the port closed");
        let stray = me.receive_match(|m| matches!(m, Message::Down(x, ..) if *x == r), Some(Duration::ZERO)).unwrap();
        strays += usize::from(stray.is_some());
    }
    assert_eq!(strays, 0, "stray DOWNs after demonitor(ref, [:flush]) in 200 tries");
    no_more_messages(&me, QUIET);
}

/// [suite] `mon_port_origin_dies`, as a race: when a process that monitors a port dies, its
/// monitor is gone from the port's `monitored_by` before anyone gets its `DOWN`. The OTP
/// case, 200 times (OTP 25: listed in 0 of 200 tries).
#[test]
fn monitored_by_drops_a_dead_watcher_before_its_down() {
    let me = process::current();
    let port = cat();
    let mut listed = 0;
    for _ in 0..200 {
        let p = port.clone();
        let watcher = spawn_forwarder_with(false, move |_| {
            p.monitor();
        });
        let r = process::monitor(watcher);
        process::send(watcher, Stop);
        assert_eq!(recv_down(&me, r), Reason::Normal);
        match port.info_item(Item::MonitoredBy) {
            Some(ItemValue::Pids(by)) => listed += usize::from(by.contains(&watcher)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(listed, 0, "monitored_by listed the dead watcher after its DOWN in 200 tries");
    port.close().unwrap();
}

/// An owner that unlinked itself and then dies. OTP leaks the port; beamport closes it with
/// the owner's reason, on purpose (docs/otp-semantics.md#owner-death).
#[test]
fn owner_that_unlinked_then_died() {
    let me = process::current();
    let (owner, port) = spawn_owner(Name::spawn("cat"), vec![], false);
    let p = port.clone();
    process::send(owner, Job(Box::new(move |_| process::unlink(&p))));
    assert!(wait_until(DEADLINE, || port.info_item(Item::Links) == Some(ItemValue::Pids(vec![]))));
    let r = port.monitor();
    process::send(owner, ExitWith(Reason::atom("boom")));
    assert_eq!(recv_down(&me, r), Reason::atom("boom"));
}

// ---------------------------------------------------------------------------------------
// EOF and exit status

/// EOF without `:eof` closes the port with `:normal`; no `:closed` follows
/// (docs/otp-semantics.md#eof-and-exit-status).
#[test]
fn eof_without_eof_option() {
    let me = process::current();
    me.trap_exit(true);
    let port = Port::open(Name::spawn("echo hi"), [Opt::Binary]).unwrap();
    assert_eq!(recv_dbg(&me), data(&port, "hi\n"));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));
    no_more_messages(&me, QUIET);
    assert!(port.info().is_none());
}

/// With `[:eof, :exit_status]` the order is data, `{:exit_status, n}`, `:eof`; the port
/// stays open; a close then answers `:closed` (docs/otp-semantics.md#eof-and-exit-status).
#[test]
fn eof_and_exit_status_order() {
    let me = process::current();
    let port = Port::open(Name::spawn("sh -c 'echo hi; exit 4'"), [Opt::Eof, Opt::ExitStatus, Opt::Binary]).unwrap();
    let (bytes, next) = recv_all_data(&me, &port);
    assert_eq!(bytes, b"hi\n");
    assert_eq!(format!("{next:?}"), from_port(&port, "{:exit_status, 4}"));
    assert_eq!(recv_dbg(&me), from_port(&port, ":eof"));
    no_more_messages(&me, QUIET);
    assert!(port.is_open());
    port.send(me.pid(), Request::Close);
    assert_eq!(recv_dbg(&me), from_port(&port, ":closed"));
    no_more_messages(&me, QUIET);
}

/// `:eof` alone: data, `:eof`, no status (docs/otp-semantics.md#eof-and-exit-status).
#[test]
fn eof_only() {
    let me = process::current();
    let port = Port::open(Name::spawn("echo hi"), [Opt::Eof, Opt::Binary]).unwrap();
    assert_eq!(recv_dbg(&me), data(&port, "hi\n"));
    assert_eq!(recv_dbg(&me), from_port(&port, ":eof"));
    no_more_messages(&me, QUIET);
    assert!(port.is_open());
    port.close().unwrap();
}

/// `{:spawn, cmd}` + `:exit_status` with a trapping owner: everything, in order.
fn status_of(cmd: &str) -> (Vec<u8>, String) {
    let me = process::current();
    me.trap_exit(true);
    let port = Port::open(Name::spawn(cmd), [Opt::ExitStatus, Opt::Binary, Opt::StderrToStdout]).unwrap();
    let (bytes, status) = recv_all_data(&me, &port);
    let Message::Port(p, PortMsg::ExitStatus(st)) = &status else { panic!("{cmd}: expected a status, got {status:?}") };
    assert_eq!(p, &port);
    assert_eq!(format!("{status:?}"), from_port(&port, &format!("{{:exit_status, {}}}", st.code())));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"), "{cmd}");
    no_more_messages(&me, Duration::from_millis(20));
    (bytes, format!("{:?}", PortMsg::ExitStatus(*st)))
}

/// Exit codes 0, 1 and 5 (docs/otp-semantics.md#eof-and-exit-status).
#[test]
fn exit_status_codes() {
    assert_eq!(status_of("true").1, "{:exit_status, 0}");
    assert_eq!(status_of("false").1, "{:exit_status, 1}");
    assert_eq!(status_of("sh -c 'exit 5'").1, "{:exit_status, 5}");
}

/// A missing program through `spawn` opens; sh reports it (here through
/// `stderr_to_stdout`) and exits 127; the port closes `:normal` (docs/otp-semantics.md#spawn-runs-a-shell).
#[test]
fn missing_program_through_spawn() {
    let (out, status) = status_of("nonexistent_prog_xyz");
    assert_eq!(status, "{:exit_status, 127}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("nonexistent_prog_xyz") && out.contains("not found"), "{out:?}");
}

/// The `exec` prefix: `echo a; echo b` prints only `a`; a builtin first (`exit 3`) fails
/// with 127 (docs/otp-semantics.md#spawn-runs-a-shell).
#[test]
fn exec_prefix() {
    let (out, status) = status_of("echo a; echo b");
    assert_eq!((out.as_slice(), status.as_str()), (&b"a\n"[..], "{:exit_status, 0}"));
    let (out, status) = status_of("exit 3");
    assert_eq!(status, "{:exit_status, 127}");
    assert!(String::from_utf8_lossy(&out).contains("not found"));
}

/// A signal gives 128 + N: SIGKILL → 137, SIGTERM → 143, SIGINT → 130; and
/// `ExitStatus::signal()` names it (docs/otp-semantics.md#eof-and-exit-status).
#[test]
fn exit_status_of_signals() {
    let me = process::current();
    let signalled = |send: &dyn Fn(&Port)| {
        let port = Port::open(Name::spawn("sleep 100"), [Opt::ExitStatus]).unwrap();
        let os_pid = port.os_pid().unwrap();
        // The pid is known before exec; wait for sleep itself so the shell is not the target.
        assert!(wait_until(DEADLINE, || cmdline(os_pid).first().map(String::as_str) == Some("sleep")));
        send(&port);
        match recv(&me) {
            Message::Port(p, PortMsg::ExitStatus(st)) if p == port => st,
            other => panic!("expected a status, got {other:?}"),
        }
    };
    let st = signalled(&|p| p.kill().unwrap());
    assert_eq!((st.code(), st.signal(), format!("{st:?}")), (137, Some(9), "{:exit_status, 137}".into()));
    let st = signalled(&|p| p.signal(libc::SIGTERM).unwrap());
    assert_eq!((st.code(), st.signal()), (143, Some(libc::SIGTERM)));
    let st = signalled(&|p| {
        let ok = std::process::Command::new("kill").args(["-INT", &p.os_pid().unwrap().to_string()]).status().unwrap();
        assert!(ok.success());
    });
    assert_eq!((st.code(), st.signal()), (130, Some(libc::SIGINT)));
    let st = signalled(&|p| p.signal(libc::SIGKILL).unwrap());
    assert!(!st.success() && !st.core_dumped());
}

/// Every byte the program wrote comes before `{:exit_status, n}`, in order, even when it is
/// far more than the read window and the socket buffers (docs/otp-semantics.md#eof-and-exit-status).
#[test]
fn all_output_comes_before_the_status() {
    let me = process::current();
    me.trap_exit(true);
    let cmd = "sh -c 'head -c 5000000 /dev/zero; printf end; exit 3'";
    let port = Port::open(Name::spawn(cmd), [Opt::ExitStatus, Opt::Binary]).unwrap();
    let (out, status) = recv_all_data(&me, &port);
    assert_eq!(out.len(), 5_000_003);
    assert!(out.ends_with(b"end") && out[..5_000_000].iter().all(|&b| b == 0));
    assert_eq!(format!("{status:?}"), from_port(&port, "{:exit_status, 3}"));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));
}

/// A port closed before its program exits never reports a status
/// (docs/otp-semantics.md#eof-and-exit-status).
#[test]
fn no_status_after_close() {
    let me = process::current();
    let port = Port::open(
        Name::spawn("sh -c 'sleep 0.2; echo late'"),
        [Opt::ExitStatus, Opt::Grace(Duration::from_millis(100), Duration::from_millis(100))],
    )
    .unwrap();
    let os_pid = port.os_pid().unwrap();
    port.send(me.pid(), Request::Close);
    assert_eq!(recv_dbg(&me), from_port(&port, ":closed"));
    children_of_launcher_gone(os_pid);
    no_more_messages(&me, QUIET);
}

/// The status waits for both EOF and the exit: a program that closes its stdout and keeps
/// running reports when it exits (docs/otp-semantics.md#eof-and-exit-status).
#[test]
fn status_waits_for_the_exit() {
    let me = process::current();
    let port = Port::open(Name::spawn("sh -c 'exec 1>&-; sleep 0.3; exit 7'"), [Opt::ExitStatus]).unwrap();
    assert_eq!(recv_dbg(&me), from_port(&port, "{:exit_status, 7}"));
}

// ---------------------------------------------------------------------------------------
// Open errors

/// `spawn_executable` of a missing file → `enoent` naming the path
/// (docs/otp-semantics.md#spawn-executable).
#[test]
fn spawn_executable_missing_path() {
    let err = Port::open(Name::executable("/nonexistent/prog"), []).unwrap_err();
    assert!(matches!(&err, OpenError::Enoent { path } if path.to_str() == Some("/nonexistent/prog")), "{err:?}");
    assert_eq!(err.otp_name(), "enoent");
    assert!(err.to_string().contains("/nonexistent/prog"), "{err}");
    // A bare name is not searched on PATH: "ls" → enoent.
    assert_eq!(Port::open(Name::executable("ls"), []).unwrap_err().otp_name(), "enoent");
}

/// A file without any execute bit → `eacces` naming the path, even as root
/// (docs/otp-semantics.md#spawn-executable).
#[test]
fn spawn_executable_not_executable() {
    let file = TempPath::new("noexec");
    std::fs::write(file.path(), "#!/bin/sh\necho hi\n").unwrap();
    let err = Port::open(Name::executable(file.path()), []).unwrap_err();
    assert!(matches!(&err, OpenError::Eacces { path } if path == file.path()), "{err:?}");
    assert_eq!(err.otp_name(), "eacces");
    assert!(err.to_string().contains(file.as_str()));
}

/// A directory passes the access check as root, opens, and exits with 13 (EACCES from
/// execve) (docs/otp-semantics.md#spawn-executable).
#[test]
fn spawn_executable_directory() {
    let me = process::current();
    let dir = TempPath::new("dir");
    std::fs::create_dir(dir.path()).unwrap();
    match Port::open(Name::executable(dir.path()), [Opt::ExitStatus]) {
        Ok(port) => assert_eq!(recv_dbg(&me), from_port(&port, "{:exit_status, 13}")),
        // Not root: the access() check refuses it, as OTP's does.
        Err(e) => assert_eq!(e.otp_name(), "eacces"),
    }
}

/// An executable text file without `#!` → status 8 (ENOEXEC), no shell fallback; the same
/// file through `spawn` runs under sh (docs/otp-semantics.md#spawn-executable).
#[test]
fn spawn_executable_without_shebang() {
    let me = process::current();
    let file = script("noshebang", "echo from sh\n");
    let port = Port::open(Name::executable(file.path()), [Opt::ExitStatus]).unwrap();
    assert_eq!(recv_dbg(&me), from_port(&port, "{:exit_status, 8}"));
    let port = Port::open(Name::spawn(file.as_str()), [Opt::ExitStatus, Opt::Binary]).unwrap();
    assert_eq!(recv_dbg(&me), data(&port, "from sh\n"));
    assert_eq!(recv_dbg(&me), from_port(&port, "{:exit_status, 0}"));
}

/// An empty command or path → `badarg` (docs/otp-semantics.md#spawn-executable).
#[test]
fn empty_names_are_badarg() {
    assert_eq!(Port::open(Name::spawn(""), []).unwrap_err().otp_name(), "badarg");
    assert_eq!(Port::open(Name::executable(""), []).unwrap_err().otp_name(), "badarg");
}

/// An unknown option → `badarg` naming it (docs/otp-semantics.md#option-parsing).
#[test]
fn unknown_options_are_badarg() {
    for text in [":bogus", "bogus", "{:bogus, 1}", "{:packet}", "{:cd, 42}"] {
        let err = text.parse::<Opt>().unwrap_err();
        assert_eq!(err.otp_name(), "badarg", "{text}");
        let name = text.trim_start_matches(['{', ':']).split([',', '}']).next().unwrap();
        assert!(err.to_string().contains(name), "{text}: {err}");
    }
}

/// Malformed options and forbidden combinations → `badarg`, in either order
/// (docs/otp-semantics.md#option-parsing).
#[test]
fn malformed_options_are_badarg() {
    for text in ["{:packet, 3}", "{:packet, 0}", "{:line, 0}", "{:parallelism, :maybe}"] {
        assert_eq!(text.parse::<Opt>().unwrap_err().otp_name(), "badarg", "{text}");
    }
    let bad = |name: Name, opts: Vec<Opt>| {
        let label = format!("{name:?} {opts:?}");
        match Port::open(name, opts) {
            Err(e) => assert_eq!(e.otp_name(), "badarg", "{label}: {e}"),
            Ok(p) => {
                let _ = p.close();
                panic!("{label} opened");
            }
        }
    };
    let cat = || Name::spawn("cat");
    let exe = || Name::executable("/bin/cat");
    bad(cat(), vec![Opt::Packet(3)]);
    bad(cat(), vec![Opt::Packet(0)]);
    bad(cat(), vec![Opt::Line(0)]);
    bad(cat(), vec![Opt::Line(10), Opt::Packet(2)]);
    bad(cat(), vec![Opt::Packet(2), Opt::Line(10)]);
    bad(cat(), vec![Opt::StderrToStdout, Opt::NoUseStdio]);
    bad(cat(), vec![Opt::NoUseStdio, Opt::StderrToStdout]);
    bad(cat(), vec![Opt::args(["x"])]);
    bad(cat(), vec![Opt::Arg0("x".into())]);
    bad(exe(), vec![Opt::env([("A=B", Some("1"))])]);
    bad(cat(), vec![Opt::BusyLimitsPort(Some((0, 10)))]);
    // `stream` resets the packet size, so this is fine.
    let port = Port::open(cat(), [Opt::Packet(2), Opt::Stream, Opt::Line(10)]).unwrap();
    port.close().unwrap();
}

/// The bare `line` option means `{:line, 512}` (docs/otp-semantics.md#option-parsing).
#[test]
fn bare_line_option() {
    assert_eq!("line".parse::<Opt>().unwrap(), Opt::Line(512));
    assert_eq!(":binary".parse::<Opt>().unwrap(), Opt::Binary);
    assert_eq!("{:parallelism, true}".parse::<Opt>().unwrap(), Opt::Parallelism(true));
}

// ---------------------------------------------------------------------------------------
// Options

/// `:binary` vs lists: the same bytes, printed as a binary or a charlist.
#[test]
fn binary_and_list_modes() {
    let me = process::current();
    let port = Port::open(Name::spawn("echo hello"), [Opt::Binary]).unwrap();
    let m = recv(&me);
    assert!(!m.data().unwrap().is_list());
    assert_eq!(format!("{m:?}"), data(&port, "hello\n"));
    let port = Port::open(Name::spawn("echo hello"), []).unwrap();
    let m = recv(&me);
    assert!(m.data().unwrap().is_list());
    assert_eq!(format!("{m:?}"), from_port(&port, "{:data, 'hello\\n'}"));
}

/// `{:cd, dir}` sets the program's cwd (docs/otp-semantics.md#cd-and-env). A bad one makes the
/// program exit with 2 (ENOENT) after a message on the host's stderr, as on the VM:
/// `tests/cli.rs` checks that, where the host's stderr can be read.
#[test]
fn cd_option() {
    let me = process::current();
    me.trap_exit(true);
    let dir = TempPath::new("cd dir");
    std::fs::create_dir(dir.path()).unwrap();
    let port = Port::open(Name::spawn("pwd"), [Opt::Cd(dir.path().into()), Opt::Binary]).unwrap();
    assert_eq!(recv_output(&me, &port), format!("{}\n", dir.as_str()));
}

/// Names of two variables of this process's environment other than PATH.
fn two_inherited_vars() -> (String, String) {
    let mut names = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k != "PATH" && !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .filter(|k| !k.starts_with(|c: char| c.is_ascii_digit()));
    (names.next().expect("an inherited variable"), names.next().expect("two inherited variables"))
}

/// `{:env, ..}` sets, unsets with `None` (Elixir's `false`) and with an empty value, and
/// keeps the rest; a second `env` option replaces the first; the last duplicate wins
/// (docs/otp-semantics.md#cd-and-env).
#[test]
fn env_option() {
    let me = process::current();
    me.trap_exit(true);
    let (gone1, gone2) = two_inherited_vars();
    let script = format!(
        "echo A=${{A-unset}} B=${{B-unset}} EQ=${{EQ-unset}} G1=${{{gone1}-unset}} G2=${{{gone2}-unset}} PATH=${{PATH:+kept}}"
    );
    let env = Opt::env([
        ("A", Some("1")),
        ("EQ", Some("x=y")),
        ("B", Some("first")),
        ("B", Some("")),
        (gone1.as_str(), None),
        (gone2.as_str(), Some("")),
    ]);
    let port = Port::open(Name::executable("/bin/sh"), [Opt::args(["-c", &script]), env, Opt::Binary]).unwrap();
    assert_eq!(recv_output(&me, &port), "A=1 B=unset EQ=x=y G1=unset G2=unset PATH=kept\n");

    let replaced = [Opt::env([("A", Some("1"))]), Opt::env([("B", Some("2"))])];
    let opts = [Opt::args(["-c", "echo A=${A-unset} B=${B-unset}"]), Opt::Binary];
    let port = Port::open(Name::executable("/bin/sh"), opts.into_iter().chain(replaced)).unwrap();
    assert_eq!(recv_output(&me, &port), "A=unset B=2\n");
}

/// `{:args, ..}` reach the program untouched: spaces, empty strings and `*`
/// (docs/otp-semantics.md#spawn-executable).
#[test]
fn args_option() {
    let me = process::current();
    me.trap_exit(true);
    let args = ["-c", "printf '[%s]' \"$@\"; echo \" $#\"", "x", "a b", "", "*", "$HOME", "'q'"];
    let port = Port::open(Name::executable("/bin/sh"), [Opt::args(args), Opt::Binary]).unwrap();
    assert_eq!(recv_output(&me, &port), "[a b][][*][$HOME]['q'] 5\n");
}

/// `argv[0]` is the path as given, or `{:arg0, ..}` in either option order
/// (docs/otp-semantics.md#spawn-executable).
#[test]
fn arg0_option() {
    let sleep = |opts: Vec<Opt>| {
        let port = Port::open(Name::executable("/bin/sleep"), opts).unwrap();
        let os_pid = port.os_pid().unwrap();
        let mut cmd = Vec::new();
        assert!(wait_until(DEADLINE, || {
            cmd = cmdline(os_pid);
            cmd.last().map(String::as_str) == Some("5")
        }));
        port.kill().unwrap();
        let _ = port.close();
        cmd
    };
    assert_eq!(sleep(vec![Opt::args(["5"])]), ["/bin/sleep", "5"]);
    assert_eq!(sleep(vec![Opt::Arg0("custom_arg0".into()), Opt::args(["5"])]), ["custom_arg0", "5"]);
    assert_eq!(sleep(vec![Opt::args(["5"]), Opt::Arg0("custom_arg0".into())]), ["custom_arg0", "5"]);
}

/// `:stderr_to_stdout` sends stderr as data; without it stderr is the host's, and the owner
/// sees none of it (docs/otp-semantics.md#stderr). What a program then writes there reaches
/// the host's stderr: `tests/cli.rs` checks that, where the host's stderr can be read.
#[test]
fn stderr_to_stdout_option() {
    let me = process::current();
    me.trap_exit(true);
    let cmd = "sh -c 'echo out; echo err-to-stdout >&2'";
    let port = Port::open(Name::spawn(cmd), [Opt::StderrToStdout, Opt::Binary]).unwrap();
    let (out, last) = recv_all_data(&me, &port);
    assert_eq!(String::from_utf8(out).unwrap(), "out\nerr-to-stdout\n");
    assert_eq!(format!("{last:?}"), exit_msg(&port, ":normal"));

    // Whether fd 2 is the port's own channel (fd 1), asked without writing to it.
    let same = "sh -c '[ /proc/self/fd/2 -ef /proc/self/fd/1 ] && echo same || echo other'";
    for (opts, want) in [(vec![Opt::Binary], "other\n"), (vec![Opt::Binary, Opt::StderrToStdout], "same\n")] {
        let port = Port::open(Name::spawn(same), opts).unwrap();
        let (out, last) = recv_all_data(&me, &port);
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(format!("{last:?}"), exit_msg(&port, ":normal"));
    }
}

/// An `:in` port reads the program's output; writing to it ends the port with `:ebadf`
/// (docs/otp-semantics.md#in-and-out-ports).
#[test]
fn in_only_port() {
    let me = process::current();
    me.trap_exit(true);
    let port = Port::open(Name::spawn("echo in-only"), [Opt::In, Opt::Binary]).unwrap();
    assert_eq!(recv_dbg(&me), data(&port, "in-only\n"));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));

    let port = Port::open(Name::spawn("sleep 5"), [Opt::In, Opt::Grace(Duration::ZERO, Duration::ZERO)]).unwrap();
    let os_pid = port.os_pid().unwrap();
    port.command("x").unwrap(); // accepted, then the port exits
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":ebadf"));
    children_of_launcher_gone(os_pid);
}

/// An `:out` port delivers what it is sent; it never reads, so it reports no status and
/// stays open after the program exits (docs/otp-semantics.md#in-and-out-ports).
#[test]
fn out_only_port() {
    let me = process::current();
    let file = TempPath::in_dir("out-only");
    let port = Port::open(Name::spawn(format!("sh -c 'cat > {}'", file.as_str())), [Opt::Out]).unwrap();
    let os_pid = port.os_pid().unwrap();
    port.command("out only").unwrap();
    port.close().unwrap();
    children_of_launcher_gone(os_pid);
    assert_eq!(std::fs::read_to_string(file.path()).unwrap(), "out only");

    let port = Port::open(Name::spawn("true"), [Opt::Out, Opt::ExitStatus]).unwrap();
    let os_pid = port.os_pid().unwrap();
    children_of_launcher_gone(os_pid);
    no_more_messages(&me, Duration::from_millis(200));
    assert!(port.is_open());
    port.close().unwrap();
}

/// `{:parallelism, true}` is accepted, reported, and the port works (docs/otp-semantics.md#option-parsing).
#[test]
fn parallelism_option() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Parallelism(true), Opt::Binary]).unwrap();
    assert_eq!(port.info_item(Item::Parallelism), Some(ItemValue::Bool(true)));
    port.command("p").unwrap();
    assert_eq!(recv_dbg(&me), data(&port, "p"));
    let port = Port::open(Name::spawn("cat"), ["{:parallelism, false}".parse().unwrap()]).unwrap();
    assert_eq!(port.info_item(Item::Parallelism), Some(ItemValue::Bool(false)));
}

/// Beyond OTP: `close_input` half-closes: `wc -c` sees EOF, prints the count, and the exit
/// status still arrives; further commands are refused.
#[test]
fn half_close() {
    let me = process::current();
    me.trap_exit(true);
    let port = Port::open(Name::spawn("wc -c"), [Opt::Binary, Opt::ExitStatus]).unwrap();
    port.command("12345").unwrap();
    port.command("678").unwrap();
    port.close_input().unwrap();
    assert!(matches!(port.command("late"), Err(PortError::InputClosed(_))));
    let (out, status) = recv_all_data(&me, &port);
    assert_eq!(String::from_utf8(out).unwrap().trim(), "8");
    assert_eq!(format!("{status:?}"), from_port(&port, "{:exit_status, 0}"));
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":normal"));
    no_more_messages(&me, QUIET);
}

/// After `:eof` the port stays open; a write to the exited program then ends the port with
/// `:epipe` (docs/otp-semantics.md#eof-and-exit-status).
#[test]
fn write_after_eof_is_epipe() {
    let me = process::current();
    me.trap_exit(true);
    let port = Port::open(Name::spawn("true"), [Opt::Eof, Opt::ExitStatus]).unwrap();
    assert_eq!(recv_dbg(&me), from_port(&port, "{:exit_status, 0}"));
    assert_eq!(recv_dbg(&me), from_port(&port, ":eof"));
    port.command("x").unwrap(); // accepted; the failure shows up as the port's exit
    assert_eq!(recv_dbg(&me), exit_msg(&port, ":epipe"));
    assert!(port.info().is_none());
    no_more_messages(&me, QUIET);
}

/// Open fds of `os_pid`, sorted.
fn fds_of(os_pid: i32) -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{os_pid}/fd"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    fds.sort_unstable();
    fds
}

/// One field of `/proc/<os_pid>/status`.
fn status_field(os_pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{os_pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// The program has exactly fds 0, 1, 2 (and 3, 4 with `:nouse_stdio`), leads its own
/// session and process group, and blocks no signal, as OTP's `port_SUITE` case `count_fds`
/// also checks (docs/otp-semantics.md#what-a-port-program-starts-with).
#[test]
fn what_a_port_program_starts_with() {
    let started = |opts: Vec<Opt>| {
        let port = Port::open(Name::executable("/bin/sleep"), opts).unwrap();
        let os_pid = port.os_pid().unwrap();
        assert!(wait_until(DEADLINE, || cmdline(os_pid) == ["/bin/sleep", "5"]));
        // Past its start-up (the loader opens files on fd 3 for a moment): asleep.
        let asleep = || std::fs::read_to_string(format!("/proc/{os_pid}/wchan")).is_ok_and(|w| w.contains("nanosleep"));
        assert!(wait_until(DEADLINE, asleep));
        let stat = std::fs::read_to_string(format!("/proc/{os_pid}/stat")).unwrap();
        let fields: Vec<i32> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .skip(2) // state, ppid
            .take(2) // pgrp, session
            .map(|f| f.parse().unwrap())
            .collect();
        let facts = (fds_of(os_pid), fields, status_field(os_pid, "SigBlk"));
        port.kill().unwrap();
        let _ = port.close();
        (os_pid, facts)
    };
    let (pid, (fds, ids, blocked)) = started(vec![Opt::args(["5"])]);
    assert_eq!(fds, [0, 1, 2]);
    assert_eq!(ids, [pid, pid], "pgrp and session");
    assert_eq!(blocked, "0000000000000000");
    let (_, (fds, _, _)) = started(vec![Opt::args(["5"]), Opt::NoUseStdio]);
    assert_eq!(fds, [0, 1, 2, 3, 4]);
}

/// Every path in this file uses `find_executable`-free absolute paths or `sh`; make sure the
/// ones it relies on exist, so a failure elsewhere is not a missing tool.
#[test]
fn tools_exist() {
    for tool in ["/bin/sh", "/bin/sleep", "/bin/pwd", "/bin/cat"] {
        assert!(std::path::Path::new(tool).exists(), "{tool}");
    }
    assert!(find_executable("wc").is_some());
    let _ = Id::from(process::current().pid());
}

/// `os_pid` is the program seen from the host; `program_pid` is the pid it sees as its own
/// (`$$`), which differs inside the launcher's PID namespace. Both name the same process.
#[test]
fn program_pid_is_the_pid_the_program_sees() {
    let me = process::current();
    let port = Port::open(Name::spawn("sh -c 'echo $$; exec cat'"), [Opt::Binary]).unwrap();
    let printed: i32 = expect_data(recv(&me), &port).as_str().unwrap().trim().parse().unwrap();
    assert_eq!(port.program_pid(), Some(printed));
    let os_pid = port.os_pid().unwrap();
    // The same process: the host's /proc/<os_pid> is `cat` (the shell exec'd it), whose own
    // view of its pid (`NSpid`'s last field) is the one it printed.
    let status = std::fs::read_to_string(format!("/proc/{os_pid}/status")).unwrap();
    let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:")).unwrap();
    assert_eq!(nspid.split_whitespace().last().unwrap().parse::<i32>().unwrap(), printed, "{status}");
    port.close().unwrap();
    assert_eq!(port.program_pid(), None);
}
