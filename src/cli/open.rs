//! `beamport open`.

/// Arguments of `beamport open`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `beamport open`.
pub fn run(_args: Args) -> i32 {
    eprintln!("beamport open: not built yet");
    2
}
