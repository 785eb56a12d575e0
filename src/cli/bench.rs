//! `beamport bench`.

/// Arguments of `beamport bench`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `beamport bench`.
pub fn run(_args: Args) -> i32 {
    eprintln!("beamport bench: not built yet");
    2
}
