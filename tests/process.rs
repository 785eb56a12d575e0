//! Processes: spawning, links, `trap_exit`, exit signals, monitors and mailboxes, following
//! Erlang's rules (the BEAM side that ports take for granted).

mod common;

use std::time::Duration;

use beamport::process::{self, DemonitorOpts, Exited, Pid};
use beamport::{Id, Message, Name, OpenError, Port, Reason};
use common::*;

/// A pid that is certainly dead.
fn dead_pid() -> Pid {
    let me = process::current();
    let pid = process::spawn(|_| {});
    let r = process::monitor(pid);
    let _ = recv_down(&me, r);
    // A `:noproc` DOWN can come while the process is still leaving the table.
    assert!(wait_until(DEADLINE, || !pid.is_alive()));
    pid
}

#[test]
fn spawn_runs_the_closure_in_a_new_process() {
    let me = process::current();
    let parent = me.pid();
    let child = process::spawn(move |me| process::send(parent, me.pid()));
    let Message::User(u) = recv(&me) else { panic!("expected the child's pid") };
    assert_eq!(u.downcast::<Pid>().unwrap(), child);
    assert_ne!(child, parent);
    assert!(format!("{child:?}").starts_with("#PID<0.") && format!("{child:?}").ends_with(".0>"));
}

#[test]
fn a_process_ends_normally_when_its_closure_returns() {
    let me = process::current();
    let child = spawn_forwarder(false);
    assert!(child.is_alive());
    assert!(process::list().contains(&child));
    let r = process::monitor(child);
    process::send(child, Stop);
    assert_eq!(format!("{:?}", recv(&me)), format!("{{:DOWN, {r:?}, :process, {child:?}, :normal}}"));
    assert!(!child.is_alive());
    assert!(!process::list().contains(&child));
}

#[test]
fn a_panic_is_the_exit_reason() {
    let me = process::current();
    let child = spawn_forwarder(false);
    let r = process::monitor(child);
    process::send(child, Crash);
    let reason = recv_down(&me, r);
    assert!(matches!(&reason, Reason::Panic(m) if &**m == "boom"), "{reason:?}");
    assert_eq!(format!("{reason:?}"), "{:panic, \"boom\"}");
}

/// A plain thread is a process too, and its end (normal) closes the ports it owns.
#[test]
fn a_thread_is_a_process_until_it_ends() {
    let me = process::current();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let port = Port::open(Name::spawn("cat"), []).unwrap();
        tx.send((process::current().pid(), port)).unwrap();
    });
    let (pid, port) = rx.recv().unwrap();
    t.join().unwrap();
    assert!(!pid.is_alive());
    let r = port.monitor();
    let reason = recv_down(&me, r);
    assert!(matches!(reason, Reason::Normal | Reason::Noproc), "{reason:?}");
    assert!(port.info().is_none());
}

// ---------------------------------------------------------------------------------------
// Links and exit signals

#[test]
fn spawn_link_trapping_parent_gets_exit_messages() {
    let me = process::current();
    me.trap_exit(true);
    let child = process::spawn_link(|_| {});
    assert_eq!(recv_dbg(&me), exit_msg(child, ":normal"));
    let child = process::spawn_link(|me| me.exit(Reason::atom("boom")));
    assert_eq!(recv_dbg(&me), exit_msg(child, ":boom"));
    let child = process::spawn_link(|_| panic!("linked panic"));
    assert_eq!(recv_dbg(&me), exit_msg(child, "{:panic, \"linked panic\"}"));
}

/// A non-trapping process dies with its linked child's non-normal reason, and survives a
/// normal one.
#[test]
fn spawn_link_non_trapping_parent_follows_the_child() {
    let me = process::current();
    let parent = spawn_forwarder(false);
    let r = process::monitor(parent);
    process::send(
        parent,
        Job(Box::new(|_| {
            process::spawn_link(|_| {});
        })),
    );
    no_more_reports(&me, QUIET);
    assert!(parent.is_alive());
    process::send(
        parent,
        Job(Box::new(|_| {
            process::spawn_link(|me| me.exit(Reason::atom("boom")));
        })),
    );
    assert_eq!(recv_down(&me, r), Reason::atom("boom"));
    assert_eq!(recv_report(&me), Report::Exited(Reason::atom("boom")));
}

#[test]
fn link_and_unlink() {
    let me = process::current();
    me.trap_exit(true);
    let a = spawn_forwarder(false);
    process::link(a).unwrap();
    process::send(a, ExitWith(Reason::atom("linked")));
    assert_eq!(recv_match(&me, |m| matches!(m, Message::Exit(..))).port(), None);
    assert_eq!(recv_report(&me), Report::Exited(Reason::atom("linked")));

    let b = spawn_forwarder(false);
    process::link(b).unwrap();
    process::unlink(b);
    process::send(b, ExitWith(Reason::atom("unlinked")));
    assert_eq!(recv_report(&me), Report::Exited(Reason::atom("unlinked")));
    no_more_messages(&me, QUIET);
}

/// The link is both ways: the linked process dies when the linker does.
#[test]
fn links_are_bidirectional() {
    let me = process::current();
    let target = spawn_forwarder(false);
    let r = process::monitor(target);
    let linker = spawn_forwarder_with(false, move |_| process::link(target).unwrap());
    process::send(linker, ExitWith(Reason::atom("both_ways")));
    assert_eq!(recv_down(&me, r), Reason::atom("both_ways"));
}

/// Linking to a dead process, as `link/1` on OTP 25: a trapping caller gets `true` and
/// `{:EXIT, pid, :noproc}`; a non-trapping one gets `noproc` raised (`Err`) and lives on,
/// with no message.
#[test]
fn link_to_a_dead_process() {
    let me = process::current();
    me.trap_exit(true);
    let dead = dead_pid();
    assert_eq!(format!("{:?}", process::link(dead)), "Ok(())");
    assert_eq!(recv_dbg(&me), exit_msg(dead, ":noproc"));

    let victim = spawn_forwarder(false);
    let r = process::monitor(victim);
    let parent = me.pid();
    let job = move |_: &process::Process| process::send(parent, Report::Msg(format!("{:?}", process::link(dead))));
    process::send(victim, Job(Box::new(job)));
    assert_eq!(recv_report(&me), Report::Msg(format!("Err(Noproc({dead:?}))")));
    no_more_reports(&me, QUIET);
    assert!(victim.is_alive(), "the caller lives on");
    process::send(victim, Stop);
    assert_eq!(recv_down(&me, r), Reason::Normal);
}

#[test]
fn trap_exit_returns_the_old_flag() {
    let me = process::current();
    assert!(!me.trap_exit(true));
    assert!(me.trap_exit(false));
    assert!(!me.trap_exit(false));
}

/// `exit(pid, :normal)` is ignored by a non-trapping process and delivered as a message to
/// a trapping one.
#[test]
fn exit_signal_normal() {
    let me = process::current();
    let calm = spawn_forwarder(false);
    process::exit(calm, Reason::Normal);
    no_more_reports(&me, QUIET);
    assert!(calm.is_alive());
    process::send(calm, Stop);

    let trapper = spawn_forwarder(true);
    process::exit(trapper, Reason::Normal);
    assert_eq!(recv_report(&me), Report::Msg(exit_msg(me.pid(), ":normal")));
    process::send(trapper, Stop);
}

/// `exit(pid, :kill)` is untrappable; links and monitors see `:killed`.
#[test]
fn exit_signal_kill() {
    let me = process::current();
    me.trap_exit(true);
    let trapper = spawn_forwarder(true);
    process::link(trapper).unwrap();
    let r = process::monitor(trapper);
    process::exit(trapper, Reason::Kill);
    assert_eq!(recv_report(&me), Report::Exited(Reason::Killed));
    assert_eq!(recv_down(&me, r), Reason::Killed);
    assert_eq!(recv_dbg(&me), exit_msg(trapper, ":killed"));
}

/// A linked process that dies *with* `:killed` (not `:kill`) is trappable.
#[test]
fn killed_through_a_link_is_trappable() {
    let me = process::current();
    let trapper = spawn_forwarder(true);
    let victim = spawn_forwarder_with(false, move |_| process::link(trapper).unwrap());
    let r = process::monitor(victim);
    process::exit(victim, Reason::Kill);
    assert_eq!(recv_down(&me, r), Reason::Killed);
    // The victim's own report and the trapper's, from two processes: in either order.
    assert_reports(&me, [Report::Exited(Reason::Killed), Report::Msg(exit_msg(victim, ":killed"))]);
    assert!(trapper.is_alive());
    process::send(trapper, Stop);
}

/// A process that ends *itself* with `:kill` (Erlang's `exit(kill)`) is seen with reason
/// `:kill`, not `:killed`, by its links and monitors: `killed` only reports an untrappable
/// `exit(pid, :kill)` from outside. Through a link `:kill` is an ordinary, trappable reason
/// (checked against OTP 25: `{'EXIT',P,kill}`, `{'DOWN',_,process,P,kill}`).
#[test]
fn exit_self_kill_is_kill_for_links_and_monitors() {
    let me = process::current();
    me.trap_exit(true);
    let p = spawn_forwarder(false);
    process::link(p).unwrap();
    let r = process::monitor(p);
    process::send(p, ExitWith(Reason::Kill));
    assert_eq!(recv_report(&me), Report::Exited(Reason::Kill));
    assert_eq!(
        recv_down(&me, r),
        Reason::Kill,
        "exit(kill) by the process itself is :kill for its monitors and links (OTP 25); \
         :killed is only for an untrappable exit(pid, :kill) from outside"
    );
    assert_eq!(recv_dbg(&me), exit_msg(p, ":kill"));

    // A trapping linked process survives it.
    let trapper = spawn_forwarder(true);
    let q = spawn_forwarder_with(false, move |_| process::link(trapper).unwrap());
    process::send(q, ExitWith(Reason::Kill));
    assert_reports(&me, [Report::Exited(Reason::Kill), Report::Msg(exit_msg(q, ":kill"))]);
    assert!(trapper.is_alive());
    process::send(trapper, Stop);
}

/// A port whose owner ends itself with `:kill` dies with `:killed` (OTP 25).
#[test]
fn owner_exit_self_kill_closes_the_port_with_killed() {
    let me = process::current();
    let (owner, port) = spawn_owner(Name::spawn("cat"), vec![], false);
    let r = port.monitor();
    process::send(owner, ExitWith(Reason::Kill));
    assert_eq!(recv_down(&me, r), Reason::Killed);
}

/// A custom reason ends a non-trapping process and reaches a trapping one as a message.
#[test]
fn exit_signal_custom() {
    let me = process::current();
    let victim = spawn_forwarder(false);
    process::exit(victim, Reason::atom("custom"));
    assert_eq!(recv_report(&me), Report::Exited(Reason::atom("custom")));

    let trapper = spawn_forwarder(true);
    process::exit(trapper, Reason::atom("custom"));
    assert_eq!(recv_report(&me), Report::Msg(exit_msg(me.pid(), ":custom")));
    assert!(trapper.is_alive());
    process::send(trapper, Stop);
}

/// `exit(self(), :normal)` ends a non-trapping caller (Erlang's special case).
#[test]
fn exit_self_normal() {
    let me = process::current();
    let p = spawn_forwarder(false);
    let r = process::monitor(p);
    process::send(p, Job(Box::new(|me| process::exit(me.pid(), Reason::Normal))));
    assert_eq!(recv_down(&me, r), Reason::Normal);
    assert_eq!(recv_report(&me), Report::Exited(Reason::Normal));
}

// ---------------------------------------------------------------------------------------
// Monitors

#[test]
fn monitor_gets_down_with_the_reason() {
    let me = process::current();
    let p = spawn_forwarder(false);
    let r = process::monitor(p);
    process::send(p, ExitWith(Reason::atom("bye")));
    assert_eq!(recv_dbg(&me), format!("{{:DOWN, {r:?}, :process, {p:?}, :bye}}"));
}

#[test]
fn monitor_of_a_dead_process_is_noproc() {
    let me = process::current();
    let dead = dead_pid();
    let r = process::monitor(dead);
    assert_eq!(recv_dbg(&me), format!("{{:DOWN, {r:?}, :process, {dead:?}, :noproc}}"));
}

#[test]
fn demonitor_removes_the_monitor() {
    let me = process::current();
    let p = spawn_forwarder(false);
    let r1 = process::monitor(p);
    let r2 = process::monitor(p);
    assert_ne!(r1, r2);
    process::demonitor(r1);
    process::send(p, Stop);
    assert_eq!(recv_down(&me, r2), Reason::Normal);
    no_more_messages(&me, QUIET);
}

/// Monitors are one-way: the monitored process does not die with the watcher.
#[test]
fn monitors_are_not_links() {
    let me = process::current();
    let target = spawn_forwarder(false);
    let r = process::monitor(target);
    let watcher = spawn_forwarder_with(false, move |_| {
        process::monitor(target);
    });
    process::send(watcher, ExitWith(Reason::atom("watcher_gone")));
    assert_eq!(recv_report(&me), Report::Exited(Reason::atom("watcher_gone")));
    assert!(target.is_alive());
    process::send(target, Stop);
    assert_eq!(recv_down(&me, r), Reason::Normal);
}

// ---------------------------------------------------------------------------------------
// Mailboxes

/// Selective receive takes the first match and keeps every other message in order.
#[test]
fn receive_match_keeps_order() {
    let me = process::current();
    for i in 0..5u32 {
        process::send(me.pid(), i);
    }
    process::send(me.pid(), "marker");
    let m = me
        .receive_match(|m| matches!(m, Message::User(u) if u.downcast_ref::<&str>().is_some()), Some(DEADLINE))
        .unwrap()
        .unwrap();
    assert_eq!(format!("{m:?}"), "\"marker\"");
    let odd = me
        .receive_match(|m| matches!(m, Message::User(u) if u.downcast_ref::<u32>().is_some_and(|x| x % 2 == 1)), None)
        .unwrap()
        .unwrap();
    let Message::User(u) = odd else { unreachable!() };
    assert_eq!(u.downcast::<u32>().unwrap(), 1);
    assert_eq!(me.message_queue_len(), 4);
    let rest: Vec<u32> = me
        .flush()
        .unwrap()
        .into_iter()
        .map(|m| match m {
            Message::User(u) => u.downcast::<u32>().unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(rest, [0, 2, 3, 4]);
    assert_eq!(me.message_queue_len(), 0);
}

/// No match within the timeout: `Ok(None)`, and nothing is taken.
#[test]
fn receive_match_timeout_takes_nothing() {
    let me = process::current();
    process::send(me.pid(), 1u8);
    let got = me.receive_match(|_| false, Some(Duration::from_millis(20))).unwrap();
    assert!(got.is_none());
    assert_eq!(me.message_queue_len(), 1);
    me.flush().unwrap();
}

#[test]
fn receive_timeout() {
    let me = process::current();
    assert!(me.receive_timeout(Duration::from_millis(20)).unwrap().is_none());
    assert!(me.receive_timeout(Duration::ZERO).unwrap().is_none());
    let parent = me.pid();
    process::spawn(move |_| process::send(parent, "late"));
    let m = me.receive_timeout(DEADLINE).unwrap().expect("a message before the deadline");
    assert_eq!(format!("{m:?}"), "\"late\"");
}

#[test]
fn flush_takes_everything_in_order() {
    let me = process::current();
    assert!(me.flush().unwrap().is_empty());
    process::send(me.pid(), "a");
    process::send(me.pid(), String::from("b"));
    process::send(me.pid(), "c");
    let all: Vec<String> = me.flush().unwrap().iter().map(|m| format!("{m:?}")).collect();
    assert_eq!(all, ["\"a\"", "\"b\"", "\"c\""]);
    assert!(me.flush().unwrap().is_empty());
}

/// Any `Send + 'static` value can be sent, and comes back with its type.
#[test]
fn user_messages_of_any_type() {
    #[derive(Debug, PartialEq)]
    struct Point {
        x: i32,
        y: i32,
    }
    let me = process::current();
    process::send(me.pid(), Point { x: 1, y: 2 });
    process::send(me.pid(), vec![1u8, 2, 3]);
    process::send(me.pid(), (String::from("tuple"), 7u64));
    let Message::User(u) = recv(&me) else { panic!() };
    assert_eq!(u.downcast_ref::<Point>(), Some(&Point { x: 1, y: 2 }));
    assert!(format!("{u:?}").contains("Point"), "{u:?}");
    let u = u.downcast::<Vec<u8>>().unwrap_err(); // wrong type: the message comes back
    assert_eq!(u.downcast::<Point>().unwrap(), Point { x: 1, y: 2 });
    let Message::User(u) = recv(&me) else { panic!() };
    assert_eq!(u.downcast::<Vec<u8>>().unwrap(), [1, 2, 3]);
    let Message::User(u) = recv(&me) else { panic!() };
    assert_eq!(u.downcast::<(String, u64)>().unwrap(), ("tuple".into(), 7));
}

/// Sending to a dead process does nothing.
#[test]
fn send_to_a_dead_process_is_dropped() {
    let dead = dead_pid();
    process::send(dead, "nobody home");
    assert!(!dead.is_alive());
}

/// A killed process learns it at its next mailbox call: every call returns
/// `Err(Exited(reason))`, a blocked `receive` wakes up, and it can no longer open ports.
#[test]
fn a_killed_process_gets_exited_from_every_mailbox_call() {
    let me = process::current();
    let parent = me.pid();
    let (tx, rx) = std::sync::mpsc::channel();
    let victim = process::spawn(move |me| {
        tx.send(()).unwrap();
        let blocked = me.receive(); // woken by the kill
        let results = vec![
            format!("{blocked:?}"),
            format!("{:?}", me.receive_timeout(Duration::from_millis(1)).map(|_| ())),
            format!("{:?}", me.receive_match(|_| true, None).map(|_| ())),
            format!("{:?}", me.flush().map(|_| ())),
            format!("{:?}", block_on(me.receive_async()).map(|_| ())),
            format!("{:?}", me.exit_reason()),
            format!("{}", me.is_alive()),
            match Port::open(Name::spawn("cat"), []) {
                Err(OpenError::Exited(r)) => format!("open: {r:?}"),
                other => format!("open: {other:?}"),
            },
        ];
        process::send(parent, results);
    });
    rx.recv().unwrap();
    process::exit(victim, Reason::atom("shot"));
    let Message::User(u) = recv(&me) else { panic!() };
    let results = u.downcast::<Vec<String>>().unwrap();
    let err = format!("{:?}", Err::<(), _>(Exited(Reason::atom("shot"))));
    assert_eq!(results[0], format!("{:?}", Err::<Message, _>(Exited(Reason::atom("shot")))));
    for r in &results[1..5] {
        assert_eq!(r, &err);
    }
    assert_eq!(results[5], "Some(:shot)");
    assert_eq!(results[6], "false");
    assert_eq!(results[7], "open: :shot");
    process::send(victim, "dropped");
}

/// `receive_async` waits without blocking a thread; polled here by a hand-written
/// `block_on`.
#[test]
fn receive_async() {
    let me = process::current();
    process::send(me.pid(), "ready");
    assert_eq!(format!("{:?}", block_on(me.receive_async()).unwrap()), "\"ready\"");

    let parent = me.pid();
    process::spawn(move |_| process::send(parent, "from another thread"));
    assert_eq!(format!("{:?}", block_on(me.receive_async()).unwrap()), "\"from another thread\"");

    // Port messages arrive the same way.
    let port = Port::open(Name::spawn("echo async"), [beamport::Opt::Binary]).unwrap();
    let m = block_on(me.receive_async()).unwrap();
    assert_eq!(format!("{m:?}"), from_port(&port, "{:data, \"async\\n\"}"));
}

/// The `Debug` forms are iex's.
#[test]
fn debug_forms() {
    let me = process::current();
    me.trap_exit(true);
    let child = process::spawn_link(|me| me.exit(Reason::atom("x")));
    let m = recv(&me);
    assert_eq!(format!("{m:?}"), format!("{{:EXIT, {child:?}, :x}}"));
    assert!(matches!(m, Message::Exit(Id::Pid(p), _) if p == child));
    for (r, s) in [
        (Reason::Normal, ":normal"),
        (Reason::Kill, ":kill"),
        (Reason::Killed, ":killed"),
        (Reason::Noproc, ":noproc"),
        (Reason::atom("badsig"), ":badsig"),
    ] {
        assert_eq!(format!("{r:?}"), s);
        assert_eq!(Reason::atom(&s[1..]), r);
    }
}

/// `demonitor(ref, [:info])` and `[:flush, :info]` as on OTP 25: `true` for a monitor that
/// had not fired; `false` once its `DOWN` is in the mailbox, which `:flush` removes and plain
/// `demonitor` leaves.
#[test]
fn demonitor_with_info_and_flush() {
    let me = process::current();
    let p = spawn_forwarder(false);
    let info = DemonitorOpts { flush: false, info: true };
    let flush_info = DemonitorOpts { flush: true, info: true };
    let active = process::monitor(p);
    assert!(process::demonitor_with(active, info));
    let (kept, flushed) = (process::monitor(p), process::monitor(p));
    process::send(p, Stop);
    assert_eq!(recv_down(&me, kept), Reason::Normal);
    assert!(!process::demonitor_with(kept, info));
    assert!(wait_until(DEADLINE, || me.message_queue_len() == 1));
    assert!(!process::demonitor_with(flushed, flush_info));
    assert!(!process::demonitor_with(flushed, flush_info), "unknown by now");
    no_more_messages(&me, QUIET);
}
