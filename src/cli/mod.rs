//! Subcommands of the `beamport` binary.

pub mod bench;
pub mod doctor;
pub mod open;
pub mod run;
pub mod tour;

use clap::{Parser, Subcommand};

/// Erlang/Elixir ports for Rust: run programs and talk to them by message passing.
#[derive(Debug, Parser)]
#[command(name = "beamport", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every example of Elixir's Port docs and print each message as iex does.
    Tour(tour::Args),
    /// Open a port and drive it: each stdin line is one command; every message is printed.
    Open(open::Args),
    /// Run PROG with stdin/stdout passed through; when stdin closes (or, with `--watch
    /// parent`, beamport's parent dies) or beamport is killed, PROG and everything it started
    /// end.
    Run(run::Args),
    /// Report how children are kept from outliving the host on this machine.
    Doctor(doctor::Args),
    /// Measure beamport against std::process, C and the Erlang VM.
    Bench(bench::Args),
}

/// Runs a subcommand; returns the process exit code.
pub fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Tour(a) => tour::run(a),
        Command::Open(a) => open::run(a),
        Command::Run(a) => run::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Bench(a) => bench::run(a),
    }
}
