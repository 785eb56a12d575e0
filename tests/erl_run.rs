//! `beamport run` under the real Erlang VM, as Elixir and Erlang users run it:
//! `open_port({spawn_executable, Beamport}, [{args, ["run", "--", Prog | Args]}, ...])`.
//!
//! The VM then halts or is SIGKILLed, and no process the program started may survive. Each
//! test skips (with a message) when `erl` is not installed.

mod helpers;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use helpers::{kill, Guard, Tree};

/// How long the tree may take to go: the VM's own shutdown, then `beamport run`'s ladder
/// (two graces of 1 s, or 5 s with the default), then the launcher's.
const GONE_WITHIN: Duration = Duration::from_secs(15);

fn erl() -> Option<PathBuf> {
    let erl = beamport::find_executable("erl");
    if erl.is_none() {
        eprintln!("SKIP: `erl` is not installed (.ci/run installs it)");
    }
    erl
}

/// `s` as an Erlang string literal.
fn erl_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `erl -noshell` that opens `beamport ARGS` as a port, prints `opened`, and halts when a
/// line arrives on its stdin.
fn erl_host(erl: &PathBuf, args: &[String]) -> Guard {
    let args: Vec<String> = args.iter().map(|a| erl_string(a)).collect();
    let eval = format!(
        "_ = open_port({{spawn_executable, {}}}, [{{args, [{}]}}, binary, exit_status]), \
         io:format(\"opened~n\"), _ = io:get_line(\"\"), halt().",
        erl_string(&helpers::beamport().to_string_lossy()),
        args.join(", ")
    );
    Guard::spawn(Command::new(erl).args(["-noshell", "-eval", &eval]))
}

/// `["run", RUN_ARGS…, "--", the tree's argv…]`.
fn run_args(run_args: &[&str], argv: Vec<String>) -> Vec<String> {
    let mut v = vec!["run".to_owned()];
    v.extend(run_args.iter().map(|a| a.to_string()));
    v.push("--".into());
    v.extend(argv);
    v
}

#[test]
fn h_erl_gets_data_and_exit_status() {
    let Some(erl) = erl() else { return };
    let eval = format!(
        "P = open_port({{spawn_executable, {}}}, [{{args, [\"run\", \"--\", \"sh\", \"-c\", \"head -c 5; exit 3\"]}}, \
         binary, exit_status]), \
         port_command(P, <<\"hello\">>), \
         Loop = fun L() -> receive {{P, {{exit_status, S}}}} -> io:format(\"~p~n\", [{{exit_status, S}}]); \
                                     {{P, M}} -> io:format(\"~p~n\", [M]), L() \
                           after 10000 -> io:format(\"timeout~n\") end end, \
         Loop(), halt().",
        erl_string(&helpers::beamport().to_string_lossy())
    );
    // The VM cannot half-close a port, so the program ends by itself after 5 bytes.
    let mut g = Guard::spawn(Command::new(&erl).args(["-noshell", "-eval", &eval]));
    drop(g.stdin());
    let mut out = String::new();
    g.stdout().read_to_string(&mut out).unwrap();
    assert_eq!(out, "{data,<<\"hello\">>}\n{exit_status,3}\n");
    assert!(g.wait().success());
}

#[test]
fn h_erl_halts_with_a_sleep_under_beamport_run() {
    let Some(erl) = erl() else { return };
    let tree = Tree::new("erl-sleep");
    // The tour's wrapper example: ["run", "--", "/bin/sleep", "1000"], marked through
    // `env`, and the default grace (5 s).
    let argv = vec![
        "/usr/bin/env".into(),
        format!("{}={}", helpers::MARK_VAR, tree.marker),
        "/bin/sleep".into(),
        "1000".into(),
    ];
    let mut vm = erl_host(&erl, &run_args(&[], argv));
    tree.wait_for(&["1000"]);
    writeln!(vm.stdin(), "halt").unwrap();
    assert!(vm.wait().success());
    tree.assert_gone_within("(h) erl halted", GONE_WITHIN);
}

#[test]
fn h_erl_halts_with_the_tree() {
    let Some(erl) = erl() else { return };
    let tree = Tree::new("erl-halt");
    let mut vm = erl_host(&erl, &run_args(&["--grace", "1s"], tree.argv()));
    tree.wait_up();
    writeln!(vm.stdin(), "halt").unwrap();
    assert!(vm.wait().success());
    tree.assert_gone_within("(h) erl halted", GONE_WITHIN);
}

#[test]
fn h_erl_sigkilled_with_the_tree() {
    let Some(erl) = erl() else { return };
    let tree = Tree::new("erl-kill");
    let vm = erl_host(&erl, &run_args(&["--grace", "1s"], tree.argv()));
    tree.wait_up();
    // `erl` may be a script that execs `beam.smp`: the pid is the VM either way.
    kill(vm.pid(), libc::SIGKILL);
    tree.assert_gone_within("(h) erl SIGKILLed", GONE_WITHIN);
}
