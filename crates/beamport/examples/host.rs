//! A host for the no-orphan tests: a separate process that opens a port on a program with
//! the library, prints what the tests need, then does what its stdin says.
//!
//! ```text
//! host PROG ARGS…
//! ```
//!
//! Prints `launcher PID`, `child OS_PID` and `tier NAME`, one per line, once the port is
//! open. Then reads one line: `exit` (or EOF) returns from `main` with the port still open,
//! `panic` panics, `abort` aborts (SIGABRT); the port is never closed by hand.

use std::io::{BufRead, Write};

use beamport::{Name, Opt, Port};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let prog = args.next().expect("usage: host PROG ARGS…");
    let path = beamport::find_executable(&prog.to_string_lossy()).expect("PROG not found");
    let port = Port::open(Name::executable(path), [Opt::Binary, Opt::Args(args.collect())]).expect("open the port");
    let report = beamport::doctor::report().expect("the launcher runs");
    let mut out = std::io::stdout().lock();
    writeln!(out, "launcher {}", report.launcher_pid).expect("stdout");
    writeln!(out, "child {}", port.os_pid().expect("the port is open")).expect("stdout");
    writeln!(out, "tier {}", report.tier).expect("stdout");
    out.flush().expect("stdout");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    match line.trim() {
        "panic" => panic!("the host panics, as asked"),
        "abort" => std::process::abort(),
        _ => {}
    }
}
