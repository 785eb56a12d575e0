//! Closing a port whatever its program does: one that never reads its input still ends
//! through the kill ladder, and one whose output the host never read still reads a clean
//! end of input, as it would from a pipe (docs/no-orphans.md#the-kill-ladder).

mod common;

use std::time::Duration;

use beamport::{process, Message, Name, Opt, Port};
use common::{os_pid_alive, wait_until};

const GRACE: Opt = Opt::Grace(Duration::from_millis(100), Duration::from_millis(100));
const WITHIN: Duration = Duration::from_secs(10);

/// The grace period starts at close, whatever is still queued: a program that never reads
/// its input is not kept alive by the output waiting for it.
#[test]
fn close_starts_the_ladder_while_output_is_still_queued() {
    for program in ["sleep 100", "sh -c 'kill -STOP $$; sleep 100'"] {
        let port = Port::open(Name::spawn(program), [GRACE]).unwrap();
        let pid = port.os_pid().unwrap();
        // More than the socket's buffers take: the rest stays queued in the host.
        port.command(vec![b'x'; 4 << 20]).unwrap();
        port.close().unwrap();
        assert!(wait_until(WITHIN, || !os_pid_alive(pid)), "{program:?} outlived its closed port");
        assert!(wait_until(WITHIN, || !Port::list().contains(&port)), "{program:?}: the port stays listed");
    }
}

/// A port closed with its program's output unread in the host: the program reads the end
/// of its input, not `ECONNRESET`.
#[test]
fn a_program_whose_output_was_not_read_reads_a_clean_end_of_input() {
    let me = process::current();
    // The read window stops the host reading after the first bytes: the rest stays unread
    // in the socket when the port closes. Then `cat` reads its input to the end.
    let program = "sh -c 'head -c 1000000 /dev/zero; exec cat >/dev/null'";
    let port = Port::open(Name::spawn(program), [Opt::Binary, Opt::ReadWindow(Some(1))]).unwrap();
    let first = me.receive_timeout(WITHIN).unwrap().expect("the first output");
    assert!(matches!(first, Message::Port(..)));
    let pid = port.os_pid().unwrap();
    // Its output is all written (to the socket) once it has become `cat`.
    let is_cat = || common::cmdline(pid).first().is_some_and(|a| a == "cat");
    assert!(wait_until(WITHIN, is_cat), "the program did not get to reading its input");
    port.close().unwrap();
    assert!(wait_until(WITHIN, || port.exit_status().is_some()), "the program did not end");
    assert!(!os_pid_alive(pid));
    let status = port.exit_status().unwrap();
    assert_eq!(status.code(), 0, "cat failed reading its input ({status:?}): not a clean end of input");
    drop(me.flush());
}
