//! `beamport run`.

/// Arguments of `beamport run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `beamport run`.
pub fn run(_args: Args) -> i32 {
    eprintln!("beamport run: not built yet");
    2
}
