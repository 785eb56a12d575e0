//! `beamport tour`.

/// Arguments of `beamport tour`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `beamport tour`.
pub fn run(_args: Args) -> i32 {
    eprintln!("beamport tour: not built yet");
    2
}
