//! Every example of Elixir's Port docs (the `Port` module of Elixir 1.5), run against the
//! library, with the messages compared as iex prints them.

mod common;

use std::time::Duration;

use beamport::{
    find_executable, process, CommandFlags, Id, Item, ItemValue, Message, Name, Opt, Port, PortError, Reason, Request,
};
use common::*;

/// ```elixir
/// iex> port = Port.open({:spawn, "cat"}, [:binary])
/// iex> send port, {self(), {:command, "hello"}}
/// iex> send port, {self(), {:command, "world"}}
/// iex> flush()
/// {#Port<0.1444>, {:data, "hello"}}
/// {#Port<0.1444>, {:data, "world"}}
/// iex> send port, {self(), :close}
/// iex> flush()
/// {#Port<0.1464>, :closed}
/// ```
#[test]
fn cat_with_the_message_api() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    let os_pid = port.os_pid().unwrap();
    // One command at a time: cat may read two queued commands in one read, and the
    // example's point is the message shape, not the chunking.
    port.send(me.pid(), Request::command("hello"));
    assert_eq!(recv_dbg(&me), from_port(&port, "{:data, \"hello\"}"));
    port.send(me.pid(), Request::command("world"));
    assert_eq!(recv_dbg(&me), from_port(&port, "{:data, \"world\"}"));
    port.send(me.pid(), Request::Close);
    assert_eq!(recv_dbg(&me), from_port(&port, ":closed"));
    no_more_messages(&me, QUIET);
    assert!(port.info().is_none());
    children_of_launcher_gone(os_pid); // cat read EOF and exited
}

/// Both commands sent before anything is read: the bytes come back complete and in order,
/// however cat chunks them.
#[test]
fn cat_two_commands_then_flush() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    port.send(me.pid(), Request::command("hello"));
    port.send(me.pid(), Request::command("world"));
    assert_eq!(recv_bytes(&me, &port, 10), b"helloworld");
    port.send(me.pid(), Request::Close);
    assert_eq!(recv_dbg(&me), from_port(&port, ":closed"));
    no_more_messages(&me, QUIET);
}

/// Without `:binary` the data is a list of bytes: iex prints a charlist.
#[test]
fn without_binary_data_is_a_list() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), []).unwrap();
    port.send(me.pid(), Request::command("hello"));
    let msg = recv(&me);
    assert_eq!(format!("{msg:?}"), from_port(&port, "{:data, 'hello'}"));
    assert!(msg.data().unwrap().is_list());
    port.close().unwrap();
}

/// ```elixir
/// iex> port = Port.open({:spawn, "echo oops"}, [:binary])
/// iex> flush()
/// {#Port<0.1444>, {:data, "oops\n"}}
/// ```
/// The port then closes by itself (EOF, reason `:normal`), which a non-trapping owner does
/// not see.
#[test]
fn echo_oops() {
    let me = process::current();
    let port = Port::open(Name::spawn("echo oops"), [Opt::Binary]).unwrap();
    let down = port.monitor();
    assert_eq!(recv_dbg(&me), from_port(&port, "{:data, \"oops\\n\"}"));
    match recv(&me) {
        Message::Down(r, Id::Port(p), reason) => {
            assert_eq!((r, &p), (down, &port));
            // `:noproc` if the port was already gone when the monitor was set.
            assert!(matches!(reason, Reason::Normal | Reason::Noproc), "{reason:?}");
        }
        other => panic!("expected :DOWN, got {other:?}"),
    }
    no_more_messages(&me, QUIET);
    assert!(process::current().is_alive());
    assert!(port.info().is_none());
}

/// ```elixir
/// iex> path = System.find_executable("echo")
/// iex> port = Port.open({:spawn_executable, path}, [:binary, args: ["hello world"]])
/// iex> flush()
/// {#Port<0.1380>, {:data, "hello world\n"}}
/// ```
#[test]
fn spawn_executable_with_args() {
    let me = process::current();
    let path = find_executable("echo").expect("echo on PATH");
    assert!(path.is_absolute());
    let port = Port::open(Name::executable(&path), [Opt::Binary, Opt::args(["hello world"])]).unwrap();
    assert_eq!(recv_dbg(&me), from_port(&port, "{:data, \"hello world\\n\"}"));
    no_more_messages(&me, QUIET);
    assert_eq!(find_executable("no-such-program-xyz"), None);
}

/// The docs' claim that `:spawn` cannot pass arguments with spaces is wrong on Unix: the
/// command goes through `sh`, so quoting works (docs/otp-semantics.md#spawn-runs-a-shell).
#[test]
fn spawn_quoting_works() {
    let me = process::current();
    let port = Port::open(Name::spawn("echo \"a  b\""), [Opt::Binary]).unwrap();
    assert_eq!(recv_dbg(&me), from_port(&port, "{:data, \"a  b\\n\"}"));
}

/// `Port.command/3` and `Port.close/1` (the function API): data replies go to the owner,
/// `close` sends no `:closed` message, and a second close is `badarg`.
#[test]
fn command_and_close_functions() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    port.command("hello").unwrap();
    assert_eq!(recv_dbg(&me), from_port(&port, "{:data, \"hello\"}"));
    // Port.command(port, data, [:nosuspend]) on a port that is not busy: true.
    assert!(port.command_with("again", CommandFlags { nosuspend: true, force: false }).unwrap());
    assert_eq!(recv_dbg(&me), from_port(&port, "{:data, \"again\"}"));
    // [:force] is notsup for spawn ports, as in OTP.
    assert!(matches!(port.command_with("x", CommandFlags { nosuspend: false, force: true }), Err(PortError::NotSup)));
    port.close().unwrap();
    no_more_messages(&me, QUIET);
    assert!(matches!(port.close(), Err(PortError::Closed(_))));
    assert!(matches!(port.command("late"), Err(PortError::Closed(_))));
}

/// `Port.command(port, data, [:nosuspend])` on a busy port returns `false` and drops the
/// data, as on the VM: 8 MB (more than the port's socket buffers) queued behind a program
/// that reads nothing (docs/otp-semantics.md#busy-ports).
#[test]
fn command_nosuspend_on_a_busy_port() {
    let me = process::current();
    me.trap_exit(true);
    let quick = Opt::Grace(Duration::from_millis(50), Duration::from_millis(50));
    let port = Port::open(Name::spawn("sleep 30"), [quick]).unwrap();
    port.command(vec![0u8; 8_000_000]).unwrap(); // accepted whole, then the port is busy
    assert!(matches!(port.info_item(Item::QueueSize), Some(ItemValue::Int(n)) if n > 0));
    let nosuspend = CommandFlags { nosuspend: true, force: false };
    assert!(!port.command_with("dropped", nosuspend).unwrap());
    assert_eq!(port.info_item(Item::Output), Some(ItemValue::Int(8_000_000)));
    process::exit(&port, Reason::Kill);
    assert_eq!(recv_dbg(&me), format!("{{:EXIT, {port:?}, :killed}}"));
}

/// `Port.connect/2`: the new owner receives the data and is linked; the old owner stays
/// linked and gets no message.
#[test]
fn connect_function() {
    let me = process::current();
    let parent = me.pid();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    let p2 = port.clone();
    let child = process::spawn(move |me| {
        let m = recv(&me);
        process::send(parent, format!("{m:?}"));
        let _ = me.receive_timeout(DEADLINE); // stay alive until told
        drop(p2);
    });
    port.connect(child).unwrap();
    assert_eq!(port.info_item(Item::Connected), Some(ItemValue::Pid(child)));
    assert_eq!(port.info_item(Item::Links), Some(ItemValue::Pids(vec![parent, child])));
    port.command("to the new owner").unwrap();
    let Message::User(u) = recv(&me) else { panic!("expected the child's report") };
    assert_eq!(u.downcast::<String>().unwrap(), from_port(&port, "{:data, \"to the new owner\"}"));
    no_more_messages(&me, QUIET);
    port.close().unwrap();
    process::send(child, ());
}

/// `Port.info/1`: every item, in OTP's order; `nil` once closed.
#[test]
fn info_1() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    let info = port.info().unwrap();
    let os_pid = port.os_pid().unwrap();
    assert_eq!(info.name, "cat");
    assert_eq!(info.links, vec![me.pid()]);
    assert_eq!(info.id, port.id());
    assert_eq!(info.connected, me.pid());
    assert_eq!((info.input, info.output), (0, 0));
    assert_eq!(info.os_pid, Some(os_pid));
    assert_eq!(
        format!("{info:?}"),
        format!(
            "[name: 'cat', links: [{:?}], id: {}, connected: {:?}, input: 0, output: 0, os_pid: {os_pid}]",
            me.pid(),
            port.id(),
            me.pid()
        )
    );
    // The pid is known once the child is forked, before it execs, as in OTP
    // (docs/otp-semantics.md#info-and-counters).
    assert!(wait_until(DEADLINE, || cmdline(os_pid) == ["cat"]), "{:?}", cmdline(os_pid));
    port.close().unwrap();
    assert!(port.info().is_none());
}

/// `Port.info/2`: one item; `nil` once closed.
#[test]
fn info_2() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    assert_eq!(port.info_item(Item::Name), Some(ItemValue::Name("cat".into())));
    assert_eq!(format!("{:?}", port.info_item(Item::Name).unwrap()), "'cat'");
    assert_eq!(port.info_item(Item::Connected), Some(ItemValue::Pid(me.pid())));
    assert_eq!(port.info_item(Item::Links), Some(ItemValue::Pids(vec![me.pid()])));
    assert_eq!(port.info_item(Item::Id), Some(ItemValue::Int(port.id())));
    assert_eq!(port.info_item(Item::OsPid), Some(ItemValue::OsPid(port.os_pid())));
    assert_eq!(port.info_item(Item::Parallelism), Some(ItemValue::Bool(false)));
    assert_eq!(port.info_item(Item::QueueSize), Some(ItemValue::Int(0)));
    assert_eq!(port.info_item(Item::MonitoredBy), Some(ItemValue::Pids(vec![])));
    port.command("abc").unwrap();
    assert_eq!(recv_dbg(&me), from_port(&port, "{:data, \"abc\"}"));
    assert_eq!(port.info_item(Item::Output), Some(ItemValue::Int(3)));
    assert_eq!(port.info_item(Item::Input), Some(ItemValue::Int(3)));
    port.close().unwrap();
    for item in [Item::Name, Item::Links, Item::Id, Item::Connected, Item::Input, Item::Output, Item::OsPid] {
        assert_eq!(port.info_item(item), None, "{item:?} of a closed port");
    }
}

/// `Port.list/0`: open ports are listed, closed ones are not.
#[test]
fn list_0() {
    let a = Port::open(Name::spawn("cat"), []).unwrap();
    let b = Port::open(Name::spawn("cat"), []).unwrap();
    let list = Port::list();
    assert!(list.contains(&a) && list.contains(&b), "{list:?}");
    a.close().unwrap();
    let list = Port::list();
    assert!(!list.contains(&a) && list.contains(&b), "{list:?}");
    b.close().unwrap();
    assert!(!Port::list().contains(&b));
}

/// The moduledoc's messages to the owner: `{:EXIT, port, reason}` reaches a trapping owner;
/// `:connected` answers `{pid, {:connect, new_pid}}`.
#[test]
fn exit_and_connected_messages() {
    let me = process::current();
    me.trap_exit(true);
    let port = Port::open(Name::spawn("echo bye"), [Opt::Binary]).unwrap();
    assert_eq!(recv_dbg(&me), from_port(&port, "{:data, \"bye\\n\"}"));
    assert_eq!(recv_dbg(&me), format!("{{:EXIT, {port:?}, :normal}}"));

    let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    let new = process::spawn(|me| {
        let _ = me.receive_timeout(DEADLINE);
    });
    port.send(me.pid(), Request::Connect(new));
    assert_eq!(recv_dbg(&me), from_port(&port, ":connected"));
    port.close().unwrap();
    assert_eq!(recv_dbg(&me), format!("{{:EXIT, {port:?}, :normal}}"));
    process::send(new, ());
}

/// The "Zombie processes" section: a wrapper that watches stdin and kills the program when
/// the port closes. (beamport does not need it — its kill ladder ends leftovers — but the
/// documented recipe must work.)
#[test]
fn zombie_wrapper_script() {
    let me = process::current();
    let wrapper =
        script("wrapper.sh", "#!/bin/sh\n\"$@\" &\npid=$!\nwhile read line ; do\n  :\ndone\nkill -KILL $pid\n");
    let sleep = find_executable("sleep").unwrap();
    let port = Port::open(
        Name::executable(wrapper.path()),
        [Opt::args([sleep.to_str().unwrap(), "300"]), Opt::ExitStatus, Opt::Binary],
    )
    .unwrap();
    let sh = port.os_pid().unwrap();
    // The wrapper's child, once it has exec'd sleep.
    let mut program = Vec::new();
    assert!(wait_until(DEADLINE, || {
        program = children(sh).into_iter().filter(|&p| cmdline(p).last().map(String::as_str) == Some("300")).collect();
        !program.is_empty()
    }));
    me.trap_exit(true);
    port.close().unwrap();
    assert_eq!(recv_dbg(&me), format!("{{:EXIT, {port:?}, :normal}}"));
    children_of_launcher_gone(program[0]);
    children_of_launcher_gone(sh);
    no_more_messages(&me, Duration::from_millis(50));
}

/// `Port.open/2`'s name types in the docs: `{:spawn, charlist | binary}` and
/// `{:spawn_executable, path}`; the port's name is what was given.
#[test]
fn port_names() {
    let port = Port::open(Name::spawn("sleep 5"), []).unwrap();
    assert_eq!(port.info_item(Item::Name), Some(ItemValue::Name("sleep 5".into())));
    port.close().unwrap();
    let port = Port::open(Name::executable("/bin/sleep"), [Opt::args(["5"])]).unwrap();
    assert_eq!(port.info_item(Item::Name), Some(ItemValue::Name("/bin/sleep".into())));
    port.close().unwrap();
}

/// The docs' examples leave nothing behind: once their ports are closed, every OS process
/// they started has ended (checked per port; the whole-launcher check is in `leaks.rs`).
#[test]
fn the_examples_ports_leave_no_process() {
    let me = process::current();
    let mut pids = Vec::new();
    for name in ["cat", "echo oops", "sleep 30"] {
        let grace = Opt::Grace(Duration::from_millis(200), Duration::from_millis(200));
        let port = Port::open(Name::spawn(name), [Opt::Binary, grace]).unwrap();
        // `echo` may have ended, and its port closed, by the time the pid is asked for (the
        // pid then is `None`, as `Port.info(port, :os_pid)` is `nil` on the VM).
        match port.os_pid() {
            Some(pid) => pids.push(pid),
            None => assert_eq!(name, "echo oops", "{name} has no pid"),
        }
        let _ = port.close();
    }
    let _ = me.flush();
    for pid in pids {
        // `sleep 30` ignores EOF; the kill ladder (SIGTERM after the grace) ends it.
        children_of_launcher_gone(pid);
    }
}
