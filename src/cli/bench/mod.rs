//! `beamport bench`: beamport against `std::process`, raw syscalls (`c`) and the Erlang VM
//! (`otp`), measured in the same run.
//!
//! Each workload runs `rounds` times per implementation, rounds interleaved (beamport, std,
//! c, otp, beamport, …) so that a change in the machine's load hits every implementation
//! alike; the table shows medians, beamport's ratio to each baseline and its targets.
//! `memory_per_port` and `max_ports` run each round in a fresh process (`--child`), and the
//! Erlang VM runs each round in a fresh VM (see [`otp`]).

mod otp;
mod report;
mod workloads;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use beamport::framing::{Framing, PacketSize};
use beamport::program::Channel;

use self::report::Results;
use self::workloads::{Impl, Res, Sample, Sizes, Workload};

/// Arguments of `beamport bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fewer rounds and smaller sizes (memory per port excepted): the whole run takes a
    /// minute or two. The targets stay comparable: each but memory's is a ratio to a baseline
    /// measured at the same size, and memory is measured at the full 5000 ports.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object per workload, implementation and metric (the median) on stdout,
    /// instead of the table.
    #[arg(long)]
    json: bool,
    /// Run only this workload (repeat for several).
    #[arg(long, value_enum, value_name = "WORKLOAD")]
    only: Vec<Workload>,
    /// Rounds per implementation [default: 5, or 3 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rounds: Option<u32>,
    /// Leave the Erlang VM out even if `escript` is on PATH.
    #[arg(long)]
    no_otp: bool,
    /// Be `latency`'s echo program: read `{packet, 4}` frames on stdin and write each back.
    #[arg(long, hide = true, exclusive = true)]
    echo_packet4: bool,
    /// Run one round of WORKLOAD/IMPL in this process and print its JSON lines
    /// (for the workloads that need a fresh process).
    #[arg(long, hide = true, value_name = "WORKLOAD/IMPL", conflicts_with = "json")]
    child: Option<String>,
}

/// Runs `beamport bench`; 0 on success, 1 if a measurement failed, 2 on bad usage.
pub fn run(args: Args) -> i32 {
    if args.echo_packet4 {
        return match echo_packet4() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("beamport bench --echo-packet4: {e}");
                1
            }
        };
    }
    let sizes = if args.quick { Sizes::quick() } else { Sizes::full() };
    if let Some(child) = &args.child {
        return run_child(child, &sizes);
    }
    let rounds = args.rounds.map_or(if args.quick { 3 } else { 5 }, |r| r as usize);
    // `max_ports` opens some 40 000 programs in all: it is left out of a quick run unless
    // asked for by name.
    let workloads: Vec<Workload> = Workload::ALL
        .into_iter()
        .filter(|w| args.only.contains(w) || (args.only.is_empty() && !(args.quick && *w == Workload::MaxPorts)))
        .collect();
    let otp = if args.no_otp { None } else { otp::Otp::find() };
    if otp.is_none() && !args.no_otp {
        eprintln!("beamport bench: no `escript` on PATH; the Erlang VM is left out");
    }
    let doctor = match beamport::doctor::report() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("beamport bench: the launcher could not start: {e}");
            return 2;
        }
    };
    let quiet = cat_count();
    let mut progress = Progress::new(workloads.iter().map(|w| rounds * runnable(*w, otp.is_some()).len()).sum());
    let started = Instant::now();
    let mut results = Results::default();
    results.tier = Some(doctor.tier.to_string());
    for &w in &workloads {
        for round in 1..=rounds {
            for &imp in &runnable(w, otp.is_some()) {
                progress.step(&format!("{}: {}, round {round}/{rounds}", w.name(), imp.name()));
                let outcome = match imp {
                    _ if imp == Impl::Otp || w.hosted_by_vm() => otp.as_ref().expect("runnable").run(w, imp, &sizes),
                    _ if w.needs_fresh_process() => in_child(w, imp, args.quick),
                    _ => workloads::run_counted(w, imp, &sizes),
                };
                match outcome {
                    Ok(samples) => results.add(w, imp, samples),
                    Err(e) => {
                        progress.clear();
                        eprintln!("beamport bench: {} by {} failed: {e}", w.name(), imp.name());
                        results.fail(w, imp, e.to_string());
                    }
                }
                if w.leaves_many_children() {
                    settle(quiet);
                }
            }
        }
    }
    progress.clear();
    if args.json {
        print!("{}", results.json());
    } else {
        println!(
            "beamport bench{}: medians of {rounds} round{}, rounds interleaved; {:.0} s; `otp`: {}",
            if args.quick { " --quick (reduced sizes; memory at full size)" } else { "" },
            if rounds == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64(),
            otp.as_ref().map_or("not measured".into(), |o| format!("OTP {}", o.version)),
        );
        println!();
        println!("{}", how_beamport_ran(&doctor));
        println!();
        for &w in &workloads {
            println!("- `{}`: {}", w.name(), sizes.describe(w));
        }
        println!();
        print!("{}", results.table());
        for note in otp.as_ref().map(otp::Otp::notes).unwrap_or_default() {
            println!("\n{note}");
        }
        for failure in results.failures() {
            println!("\nFailed: {failure}.");
        }
    }
    i32::from(!results.failures().is_empty())
}

/// Who `beamport`'s figures were measured as: the user, the launcher's tier, and whether an
/// opener may fork its programs (the "forked by" column says which path each workload took).
fn how_beamport_ran(r: &beamport::doctor::Report) -> String {
    let uid = rustix::process::getuid().as_raw();
    let user = if uid == 0 { "root".to_string() } else { format!("an unprivileged user (uid {uid})") };
    let forks = match &r.opener_forks {
        Ok(()) => {
            "an opener forks its program itself while at most 64 such programs run, else the launcher forks".into()
        }
        Err(why) => format!("the launcher forks every program ({why})"),
    };
    format!("`beamport` ran as {user}, on the `{}` tier: {forks}.", r.tier)
}

/// The implementations that can run `w` here.
fn runnable(w: Workload, have_otp: bool) -> Vec<Impl> {
    w.impls().iter().copied().filter(|i| (*i != Impl::Otp && !w.hosted_by_vm()) || have_otp).collect()
}

/// Runs one round of `w` by `imp` in a fresh `beamport bench --child` process.
fn in_child(w: Workload, imp: Impl, quick: bool) -> Res<Vec<Sample>> {
    let mut cmd = std::process::Command::new(workloads::self_exe());
    cmd.args(["bench", "--child", &format!("{}/{}", w.name(), imp.name())]);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.stdin(std::process::Stdio::null()).output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("the child process failed ({}): {}", out.status, err.trim()).into());
    }
    otp::parse_lines(&String::from_utf8_lossy(&out.stdout), w, imp)
}

/// `--child WORKLOAD/IMPL`: one round here, printed as JSON lines.
fn run_child(spec: &str, sizes: &Sizes) -> i32 {
    let parsed = spec.split_once('/').and_then(|(w, i)| Some((Workload::from_name(w)?, Impl::from_name(i)?)));
    let Some((w, imp)) = parsed.filter(|(_, i)| *i != Impl::Otp) else {
        eprintln!("beamport bench --child: expected WORKLOAD/IMPL, got {spec:?}");
        return 2;
    };
    match workloads::run_counted(w, imp, sizes) {
        Ok(samples) => {
            let mut results = Results::default();
            results.add(w, imp, samples);
            print!("{}", results.json());
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// `latency`'s echo program: every `{packet, 4}` frame on stdin goes back on stdout.
fn echo_packet4() -> std::io::Result<()> {
    let mut channel = Channel::stdio(Framing::Packet(PacketSize::Four))?;
    while let Some(frame) = channel.read()? {
        channel.write(&frame)?;
    }
    Ok(())
}

/// How many `cat` processes the machine runs, zombies included.
fn cat_count() -> usize {
    otp::processes().filter(|pid| std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c == b"cat\n")).count()
}

/// Waits (at most 20 s) until the `cat`s a round left behind have exited, so that their
/// exits don't slow the next round down.
fn settle(quiet: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while cat_count() > quiet + 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A one-line progress report on stderr, when stderr is a terminal.
struct Progress {
    done: usize,
    total: usize,
    on: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress { done: 0, total, on: std::io::stderr().is_terminal() }
    }

    fn step(&mut self, what: &str) {
        self.done += 1;
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K[{:>3}/{}] {what}", self.done, self.total);
            let _ = err.flush();
        }
    }

    fn clear(&self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}
