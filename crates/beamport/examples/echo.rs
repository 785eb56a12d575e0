//! An echo port program: sends every frame it reads back unchanged.
//!
//! ```text
//! echo [--packet N | --line] [--nouse-stdio] [--exit N]
//! ```
//!
//! `--packet N` frames with an N-byte header (1, 2 or 4); `--line` echoes
//! line by line (a CR LF comes back as LF); the default is `stream`.
//! `--nouse-stdio` talks on fds 3 and 4 instead of 0 and 1. At EOF the
//! program exits with the status given by `--exit` (default 0).

use std::io;
use std::num::NonZeroUsize;
use std::process::ExitCode;

use beamport::framing::{Framing, PacketSize};
use beamport::program::Channel;
use clap::Parser;

/// The longest line piece echoed at once; longer lines come back in pieces.
const MAX_LINE: NonZeroUsize = match NonZeroUsize::new(64 * 1024) {
    Some(n) => n,
    None => unreachable!(),
};

#[derive(Parser)]
#[command(about = "An echo port program")]
struct Args {
    /// Frame with an N-byte length header (1, 2 or 4).
    #[arg(long, value_name = "N", value_parser = |s: &str| -> Result<PacketSize, String> {
        let n: u8 = s.parse().map_err(|e| format!("{e}"))?;
        PacketSize::try_from(n).map_err(|e| e.to_string())
    })]
    packet: Option<PacketSize>,
    /// Echo line by line.
    #[arg(long, conflicts_with = "packet")]
    line: bool,
    /// Read from fd 3 and write to fd 4.
    #[arg(long)]
    nouse_stdio: bool,
    /// Exit with this status at EOF.
    #[arg(long, value_name = "N", default_value_t = 0)]
    exit: u8,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match echo(&args) {
        Ok(()) => ExitCode::from(args.exit),
        Err(err) => {
            eprintln!("echo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn echo(args: &Args) -> io::Result<()> {
    let framing = match (args.packet, args.line) {
        (Some(size), _) => Framing::Packet(size),
        (None, true) => Framing::Line(MAX_LINE),
        (None, false) => Framing::Stream,
    };
    let mut channel = if args.nouse_stdio { Channel::nouse_stdio(framing)? } else { Channel::stdio(framing)? };
    while let Some(frame) = channel.read_frame()? {
        channel.write_frame(&frame)?;
    }
    Ok(())
}
