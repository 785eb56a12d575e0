//! A host for `tests/no_orphans.rs` whose launcher is busy: it opens a `sleep` port, then a
//! port on the program given as arguments (so that the launcher forks that one on a spawner
//! thread, as it does while children run), waits for that program's first output, prints
//! `ready`, and returns from `main` at the first line (or EOF) on its stdin.

use std::io::{BufRead, Write};

use beamport::{Name, Opt, Port};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let program = args.next().expect("usage: busy_host PROG [ARGS...]");
    let sleeper = Port::open(Name::spawn("sleep 1006"), []).expect("open the sleep port");
    let _ = sleeper.os_pid(); // the launcher has forked it: the next spawn finds it busy
    let path = std::path::PathBuf::from(program);
    let port = Port::open(Name::executable(path), [Opt::Binary, Opt::Args(args.collect())]).expect("open the port");
    // The program's first output says it is set up (e.g. its signal traps are in place).
    let me = beamport::process::current();
    me.receive_timeout(std::time::Duration::from_secs(10)).expect("alive").expect("the program's first output");
    let _ = port;
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    let _ = std::io::stdin().lock().read_line(&mut String::new());
}
