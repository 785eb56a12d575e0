//! Busy limits mean what they say: a sender is suspended once about as much output waits for
//! a program that does not read as OTP lets wait (its 64 KiB pipe, then the limits), not
//! once the socket's far larger buffer is full (docs/otp-semantics.md#busy-ports).

use beamport::{CommandFlags, Name, Opt, Port};

const NOSUSPEND: CommandFlags = CommandFlags { nosuspend: true, force: false };

/// How many 99-byte commands a port on a program that never reads takes before it is busy.
fn accepted_before_busy(opts: Vec<Opt>) -> Option<usize> {
    let port = Port::open(Name::spawn("sleep 100"), opts).unwrap();
    let taken = (0..5000).position(|_| !port.command_with(vec![b'x'; 99], NOSUSPEND).unwrap());
    port.kill().unwrap();
    taken
}

#[test]
fn a_port_on_a_program_that_does_not_read_becomes_busy_as_otp_s_does() {
    // OTP: within the first ~660 (64 KiB of pipe, then the queue's high limit of 1 byte).
    let taken = accepted_before_busy(vec![Opt::BusyLimitsPort(Some((1, 1)))]).expect("never busy");
    assert!(taken <= 1000, "busy only after {taken} commands of 99 bytes");
    // The default limits, {4096, 8192}: 64 KiB of kernel buffer and 8 KiB of queue.
    let taken = accepted_before_busy(vec![]).expect("never busy with the default limits");
    assert!(taken <= 1100, "busy only after {taken} commands of 99 bytes");
}

#[test]
fn without_busy_limits_a_port_is_never_busy() {
    assert_eq!(accepted_before_busy(vec![Opt::BusyLimitsPort(None)]), None);
}
