//! `beamport`: the command-line face of the library.
//!
//! - `beamport tour`: every example of Elixir's `Port` docs, printed as iex prints them.
//! - `beamport open [OPTIONS] -- PROG ARGS…` / `--spawn "CMD"`: a port driven from a terminal.
//! - `beamport run [--grace D] [--watch W] -- PROG ARGS…`: the wrapper of Elixir's Port docs,
//!   done right.
//! - `beamport doctor`: how this machine keeps children from outliving their host.
//! - `beamport bench`: the speed and memory figures against `std::process`, C and the BEAM.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    std::process::exit(cli::dispatch(args));
}
