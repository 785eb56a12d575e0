//! The workloads, and how `beamport`, `std` and `c` run each of them in this process.
//!
//! `std` is `std::process::Command` with blocking pipes and a thread where one is needed.
//! `c` is what a C program would do with the same syscalls: raw `read`/`write`/`poll` on
//! the pipe fds (through `rustix`, which is safe), and `Command::status()` for spawning,
//! which std implements with `posix_spawn` + `waitpid` when no `pre_exec` hook is set, as
//! a C program would. The Erlang VM's side is in `bench/otp/` (see [`super::otp`]).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use beamport::{process, Message, Name, Opt, Port, PortMsg};
use bytes::Bytes;

/// Any error of a measurement, with what failed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// A measurement's result.
pub type Res<T> = Result<T, Error>;

/// How long any single wait in a measurement may take before it is called a failure.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The 16 bytes each port of `concurrency_5000` echoes.
const ECHO16: &[u8; 16] = b"0123456789abcdef";
/// Ports kept running at once by `spawn_par64`.
pub const IN_FLIGHT: usize = 64;
/// The round trips `latency` makes before it starts timing.
const WARMUP_TRIPS: usize = 200;

/// A workload of `beamport bench`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Workload {
    /// Bytes through `/bin/cat` in 64 KiB binary commands.
    #[value(name = "throughput")]
    Throughput,
    /// 32-byte `{packet, 4}` ping-pong with an echo program.
    #[value(name = "latency")]
    Latency,
    /// Spawn `/bin/true` and wait for its exit status, one at a time.
    #[value(name = "spawn_seq")]
    SpawnSeq,
    /// The same with 64 in flight.
    #[value(name = "spawn_par64")]
    SpawnPar64,
    /// 5000 `cat` ports open at once, one 16-byte echo each: total time.
    #[value(name = "concurrency_5000")]
    Concurrency5000,
    /// Host memory per open `cat` port, with 5000 open.
    #[value(name = "memory_per_port")]
    MemoryPerPort,
    /// The most `cat` ports open at once under the fd limit.
    #[value(name = "max_ports")]
    MaxPorts,
    /// Terms echoed by a Rust port program and by an Erlang one, the VM the host of both.
    #[value(name = "term_roundtrip")]
    TermRoundtrip,
}

impl Workload {
    /// Every workload, in the order they run.
    pub const ALL: [Workload; 8] = [
        Workload::Throughput,
        Workload::Latency,
        Workload::SpawnSeq,
        Workload::SpawnPar64,
        Workload::Concurrency5000,
        Workload::MemoryPerPort,
        Workload::MaxPorts,
        Workload::TermRoundtrip,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Throughput => "throughput",
            Workload::Latency => "latency",
            Workload::SpawnSeq => "spawn_seq",
            Workload::SpawnPar64 => "spawn_par64",
            Workload::Concurrency5000 => "concurrency_5000",
            Workload::MemoryPerPort => "memory_per_port",
            Workload::MaxPorts => "max_ports",
            Workload::TermRoundtrip => "term_roundtrip",
        }
    }

    /// The workload called `name`.
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The implementations measured for this workload, in the order each round runs them.
    pub fn impls(self) -> &'static [Impl] {
        match self {
            Workload::Throughput => &[Impl::Beamport, Impl::Std, Impl::C, Impl::CSplice, Impl::Otp],
            Workload::Latency => &[Impl::Beamport, Impl::Std, Impl::C, Impl::CSocket, Impl::Otp],
            Workload::SpawnSeq | Workload::SpawnPar64 => &[Impl::Beamport, Impl::Std, Impl::C, Impl::Otp],
            Workload::Concurrency5000 | Workload::MemoryPerPort | Workload::MaxPorts => {
                &[Impl::Beamport, Impl::Std, Impl::Otp]
            }
            // `beamport`: the port program is Rust's; the host is the VM for both.
            Workload::TermRoundtrip => &[Impl::Beamport, Impl::Otp],
        }
    }

    /// Whether the VM is the host of every implementation (the port programs differ).
    pub fn hosted_by_vm(self) -> bool {
        matches!(self, Workload::TermRoundtrip)
    }

    /// Whether a measurement must run in a fresh process: memory is measured as the growth
    /// of the resident set, which only a fresh heap shows, and `max_ports` exhausts fds.
    pub fn needs_fresh_process(self) -> bool {
        matches!(self, Workload::MemoryPerPort | Workload::MaxPorts)
    }

    /// Whether it leaves thousands of programs exiting, to wait for before the next round.
    pub fn leaves_many_children(self) -> bool {
        matches!(self, Workload::Concurrency5000 | Workload::MemoryPerPort | Workload::MaxPorts)
    }
}

/// Who runs a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Impl {
    /// This crate's public API.
    Beamport,
    /// `std::process::Command` with blocking pipes.
    Std,
    /// Raw syscalls on the pipes, as a C program would make them.
    C,
    /// `throughput` only: the C pump tuned for the most throughput (`splice`, 1 MiB pipes).
    CSplice,
    /// `latency` only: C over one Unix socket pair, as beamport's ports talk, spinning on
    /// non-blocking reads as beamport does: the floor of the transport beamport chose.
    CSocket,
    /// The Erlang VM, through the escripts of `bench/otp/`.
    Otp,
}

impl Impl {
    /// The name used in JSON and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Beamport => "beamport",
            Impl::Std => "std",
            Impl::C => "c",
            Impl::CSplice => "c_splice",
            Impl::CSocket => "c_socket",
            Impl::Otp => "otp",
        }
    }

    /// Every implementation, in the table's order.
    pub const ALL: [Impl; 6] = [Impl::Beamport, Impl::Std, Impl::C, Impl::CSplice, Impl::CSocket, Impl::Otp];

    /// The implementation called `name`.
    pub fn from_name(name: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// The sizes of every workload.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Bytes pushed through `cat` by `throughput`.
    pub throughput_bytes: usize,
    /// Bytes per command in `throughput`.
    pub chunk: usize,
    /// Timed round trips in `latency`.
    pub trips: usize,
    /// Bytes per `latency` message.
    pub payload: usize,
    /// Spawns in `spawn_seq`.
    pub spawn_seq: usize,
    /// Spawns in `spawn_par64`.
    pub spawn_par: usize,
    /// Ports in `concurrency_5000`.
    pub concurrency: usize,
    /// Ports open while `memory_per_port` measures.
    pub memory: usize,
    /// `max_ports` stops here even without an error.
    pub max_ports_cap: usize,
    /// Timed round trips of the 1 KB map in `term_roundtrip`.
    pub term_map_trips: usize,
    /// Timed round trips of the 64 KB binary in `term_roundtrip`.
    pub term_binary_trips: usize,
}

impl Sizes {
    /// The sizes the README's figures and targets are measured at.
    pub fn full() -> Sizes {
        Sizes {
            throughput_bytes: 512 << 20,
            chunk: 64 << 10,
            trips: 50_000,
            payload: 32,
            spawn_seq: 2_000,
            spawn_par: 4_000,
            concurrency: 5_000,
            memory: 5_000,
            max_ports_cap: 25_000,
            term_map_trips: 20_000,
            term_binary_trips: 4_000,
        }
    }

    /// Smaller sizes for `--quick`, where that keeps the figures comparable with the full
    /// run's: every target but memory's is a ratio to a baseline measured at the same size in
    /// the same run. `memory_per_port` keeps the full 5,000 ports: its target is an absolute
    /// figure per port, and with fewer ports the steps in which the host's tables and heap
    /// grow weigh more on each port, so a smaller run's figure is not the one the target is
    /// set for.
    pub fn quick() -> Sizes {
        Sizes {
            throughput_bytes: 64 << 20,
            trips: 5_000,
            spawn_seq: 300,
            spawn_par: 600,
            concurrency: 1_000,
            term_map_trips: 2_000,
            term_binary_trips: 400,
            ..Sizes::full()
        }
    }

    /// What the workload does, for the table's legend.
    pub fn describe(&self, w: Workload) -> String {
        match w {
            Workload::Throughput => format!(
                "{} MiB through `/bin/cat` in {} KiB binary commands",
                self.throughput_bytes >> 20,
                self.chunk >> 10
            ),
            Workload::Latency => format!(
                "{} round trips of {} B with `{{packet, 4}}` through `beamport bench --echo-packet4`",
                self.trips, self.payload
            ),
            Workload::SpawnSeq => {
                format!("{} × spawn `/bin/true` and wait for its exit status, one at a time", self.spawn_seq)
            }
            Workload::SpawnPar64 => format!("the same, {} spawns, {IN_FLIGHT} in flight", self.spawn_par),
            Workload::Concurrency5000 => {
                format!("open {} `cat` ports, one 16-byte echo each, close them: total time", self.concurrency)
            }
            Workload::MemoryPerPort => format!("host memory per open `cat` port, {} open", self.memory),
            Workload::MaxPorts => "`cat` ports open at once before the first error".to_string(),
            Workload::TermRoundtrip => format!(
                "a 1 KB map ({} trips) and a 64 KB binary ({}), `term_to_binary`'d by the VM, decoded and \
                 encoded again by a port program, round trips per second; the VM is the host of both: \
                 `beamport` is Rust's (`beamport-term-echo`, the loop of `examples/term_echo` with mimalloc), \
                 `otp` is Erlang's (`bench/otp/term_echo.escript`)",
                self.term_map_trips, self.term_binary_trips
            ),
        }
    }
}

/// One measured value: `metric` in `unit`, and for `max_ports` the error that stopped it.
#[derive(Clone, Debug)]
pub struct Sample {
    /// `throughput`, `median`, `p99`, `rate`, `total`, `memory` or `ports`.
    pub metric: String,
    /// `MB/s`, `us`, `per_s`, `s`, `bytes` or `ports`.
    pub unit: String,
    /// The value.
    pub value: f64,
    /// The error that ended `max_ports` (`emfile`…).
    pub error: Option<String>,
    /// For `beamport`: the programs its round started, by who forked them.
    pub spawns: Option<beamport::doctor::Spawns>,
}

impl Sample {
    pub fn new(metric: &str, unit: &str, value: f64) -> Sample {
        Sample { metric: metric.into(), unit: unit.into(), value, error: None, spawns: None }
    }
}

/// The programs started so far by each path (see [`beamport::doctor::Spawns`]).
pub fn spawns_so_far() -> beamport::doctor::Spawns {
    beamport::doctor::report().map(|r| r.spawns).unwrap_or_default()
}

/// Runs one round of `w` by `imp` (not `Otp`) in this process; `beamport`'s samples say
/// which path its spawns took.
pub fn run_counted(w: Workload, imp: Impl, s: &Sizes) -> Res<Vec<Sample>> {
    let before = spawns_so_far();
    let mut samples = run(w, imp, s)?;
    if imp == Impl::Beamport {
        let after = spawns_so_far();
        let spawns = beamport::doctor::Spawns {
            by_opener: after.by_opener - before.by_opener,
            by_launcher: after.by_launcher - before.by_launcher,
        };
        samples.iter_mut().for_each(|x| x.spawns = Some(spawns));
    }
    Ok(samples)
}

/// Runs one round of `w` by `imp` (not `Otp`) in this process.
fn run(w: Workload, imp: Impl, s: &Sizes) -> Res<Vec<Sample>> {
    let one = |metric: &str, unit: &str, value: Res<f64>| value.map(|v| vec![Sample::new(metric, unit, v)]);
    match (w, imp) {
        (Workload::Throughput, Impl::Beamport) => one("throughput", "MB/s", fresh(|| beamport_throughput(s))),
        (Workload::Throughput, Impl::Std) => one("throughput", "MB/s", std_throughput(s)),
        (Workload::Throughput, Impl::C) => one("throughput", "MB/s", c_throughput(s)),
        (Workload::Throughput, Impl::CSplice) => one("throughput", "MB/s", c_splice_throughput(s)),
        (Workload::Latency, Impl::Beamport) => fresh(|| beamport_latency(s)).map(latency_samples),
        (Workload::Latency, Impl::Std) => std_latency(s, false).map(latency_samples),
        (Workload::Latency, Impl::C) => std_latency(s, true).map(latency_samples),
        (Workload::Latency, Impl::CSocket) => c_socket_latency(s).map(latency_samples),
        (Workload::SpawnSeq, i) => one("rate", "per_s", spawn_rate(i, s.spawn_seq, 1)),
        (Workload::SpawnPar64, i) => one("rate", "per_s", spawn_rate(i, s.spawn_par, IN_FLIGHT)),
        (Workload::Concurrency5000, Impl::Beamport) => one("total", "s", fresh(|| beamport_concurrency(s.concurrency))),
        (Workload::Concurrency5000, Impl::Std) => one("total", "s", std_concurrency(s.concurrency)),
        (Workload::MemoryPerPort, Impl::Beamport) => one("memory", "bytes", fresh(|| beamport_memory(s.memory))),
        (Workload::MemoryPerPort, Impl::Std) => one("memory", "bytes", std_memory(s.memory)),
        (Workload::MaxPorts, Impl::Beamport) => fresh(|| beamport_max_ports(s.max_ports_cap)).map(|s| vec![s]),
        (Workload::MaxPorts, Impl::Std) => std_max_ports(s.max_ports_cap).map(|s| vec![s]),
        (Workload::TermRoundtrip, _) => Err("term_roundtrip runs in the VM, through its escript".into()),
        (w, i) => Err(format!("{} has no {} implementation", w.name(), i.name()).into()),
    }
}

/// Runs `f` on a new thread, hence as a new beamport process: its mailbox starts empty and
/// every port it opened closes when it returns.
fn fresh<T: Send>(f: impl FnOnce() -> Res<T> + Send) -> Res<T> {
    thread::scope(|scope| scope.spawn(f).join().unwrap_or_else(|_| Err("the measurement panicked".into())))
}

fn timeout(what: &str) -> Error {
    format!("timed out waiting for {what}").into()
}

fn latency_samples(mut trips: Vec<Duration>) -> Vec<Sample> {
    trips.sort_unstable();
    let us = |q: f64| {
        let i = (q * (trips.len() - 1) as f64).round() as usize;
        trips[i].as_secs_f64() * 1e6
    };
    vec![Sample::new("median", "us", us(0.5)), Sample::new("p99", "us", us(0.99))]
}

/// The running `beamport` binary, which is also `latency`'s echo program and the
/// `--child` runner: `/proc/PID/exe`, which names the running file even after a rebuild
/// has replaced or deleted `target/release/beamport` (the build directory is shared).
pub fn self_exe() -> std::path::PathBuf {
    format!("/proc/{}/exe", std::process::id()).into()
}

fn echo_program() -> Res<std::path::PathBuf> {
    Ok(self_exe())
}

/// The arguments that make the `beamport` binary an echo program.
pub const ECHO_ARGS: [&str; 2] = ["bench", "--echo-packet4"];

/// `term_roundtrip`'s Rust port program: `beamport-term-echo`, built with `beamport` and found
/// next to it.
pub fn term_echo_program() -> Res<std::path::PathBuf> {
    let path = std::env::current_exe()?.with_file_name("beamport-term-echo");
    if !path.is_file() {
        return Err(format!("{} is missing: build it with `cargo build --release`", path.display()).into());
    }
    Ok(path)
}

fn megabytes_per_s(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e6
}

// --- throughput ---------------------------------------------------------------------------

fn beamport_throughput(s: &Sizes) -> Res<f64> {
    let me = process::current();
    let port = Port::open(Name::executable("/bin/cat"), [Opt::Binary])?;
    let chunk = Bytes::from(vec![b'x'; s.chunk]);
    let n = s.throughput_bytes / s.chunk;
    let total = n * s.chunk;
    let start = Instant::now();
    let got = thread::scope(|scope| -> Res<usize> {
        // A writer besides the owner, as in the escript: a command waits while the port is
        // busy, and the owner must go on taking data meanwhile.
        let writer = scope.spawn(|| -> Res<()> {
            for _ in 0..n {
                port.command(chunk.clone())?;
            }
            Ok(())
        });
        let mut got = 0;
        while got < total {
            let msg = me.receive_timeout(TIMEOUT)?.ok_or_else(|| timeout("cat's output"))?;
            got += msg.data().map_or(0, |d| d.bytes().len());
        }
        writer.join().map_err(|_| "writer panicked")??;
        Ok(got)
    })?;
    let t = start.elapsed();
    port.close()?;
    Ok(megabytes_per_s(got, t))
}

fn spawn_cat() -> Res<Child> {
    Ok(Command::new("/bin/cat").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?)
}

fn std_throughput(s: &Sizes) -> Res<f64> {
    let mut child = spawn_cat()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let chunk = vec![b'x'; s.chunk];
    let n = s.throughput_bytes / s.chunk;
    let total = n * s.chunk;
    let start = Instant::now();
    let writer = thread::spawn(move || -> std::io::Result<()> {
        for _ in 0..n {
            stdin.write_all(&chunk)?;
        }
        Ok(())
    });
    let mut buf = vec![0; s.chunk];
    let mut got = 0;
    while got < total {
        match stdout.read(&mut buf)? {
            0 => return Err("cat ended early".into()),
            k => got += k,
        }
    }
    let t = start.elapsed();
    writer.join().map_err(|_| "writer panicked")??;
    child.wait()?;
    Ok(megabytes_per_s(got, t))
}

/// One thread, non-blocking pipes and `poll(2)`: the classic C pump.
fn c_throughput(s: &Sizes) -> Res<f64> {
    c_pump(s, None, false)
}

/// The pump a C programmer writes for the most throughput: both pipes grown to 1 MiB (the
/// size of beamport's socket buffers, and the most an unprivileged process may ask), and
/// the input handed to `cat`'s pipe with `splice(2)` from a file holding the chunk, so the
/// kernel references its pages instead of copying them (what `vmsplice` does for memory).
fn c_splice_throughput(s: &Sizes) -> Res<f64> {
    c_pump(s, Some(1 << 20), true)
}

/// A one-thread `poll(2)` pump through `cat`: pipes of `pipe_size` (the kernel's 64 KiB
/// if `None`), input by `write` or by `splice` from a memory file.
fn c_pump(s: &Sizes, pipe_size: Option<usize>, splice: bool) -> Res<f64> {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut child = spawn_cat()?;
    let stdin: OwnedFd = child.stdin.take().ok_or("no stdin")?.into();
    let stdout: OwnedFd = child.stdout.take().ok_or("no stdout")?.into();
    rustix::io::ioctl_fionbio(&stdin, true)?;
    rustix::io::ioctl_fionbio(&stdout, true)?;
    if let Some(size) = pipe_size {
        rustix::pipe::fcntl_setpipe_size(&stdin, size)?;
        rustix::pipe::fcntl_setpipe_size(&stdout, size)?;
    }
    let chunk = vec![b'x'; s.chunk];
    let source = if splice {
        let f = rustix::fs::memfd_create("beamport-bench-chunk", rustix::fs::MemfdFlags::CLOEXEC)?;
        raw_write_all(&f, &chunk)?;
        Some(f)
    } else {
        None
    };
    let total = s.throughput_bytes / s.chunk * s.chunk;
    let mut buf = vec![0; s.chunk];
    let (mut sent, mut got) = (0, 0);
    let mut stdin = Some(stdin);
    let start = Instant::now();
    while got < total {
        let mut fds = vec![PollFd::new(&stdout, PollFlags::IN)];
        if let Some(w) = &stdin {
            fds.push(PollFd::new(w, PollFlags::OUT));
        }
        poll(&mut fds, None)?;
        let (readable, writable) = (!fds[0].revents().is_empty(), fds.get(1).is_some_and(|f| !f.revents().is_empty()));
        drop(fds);
        if writable {
            let w = stdin.as_ref().expect("polled");
            let off = sent % s.chunk;
            let len = (s.chunk - off).min(total - sent);
            let wrote = match &source {
                Some(f) => {
                    let mut at = off as u64;
                    rustix::pipe::splice(f, Some(&mut at), w, None, len, rustix::pipe::SpliceFlags::NONBLOCK)
                }
                None => rustix::io::write(w, &chunk[off..off + len]),
            };
            match wrote {
                Ok(k) => sent += k,
                Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
            if sent == total {
                stdin = None;
            }
        }
        if readable {
            match rustix::io::read(&stdout, &mut buf) {
                Ok(0) => return Err("cat ended early".into()),
                Ok(k) => got += k,
                Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let t = start.elapsed();
    drop(stdin);
    child.wait()?;
    Ok(megabytes_per_s(got, t))
}

// --- latency ------------------------------------------------------------------------------

fn beamport_latency(s: &Sizes) -> Res<Vec<Duration>> {
    let me = process::current();
    // With `:exit_status`, an echo program that fails (to exec, or at once) ends the port
    // with its status, reported at once instead of after `TIMEOUT`.
    let opts = [Opt::Binary, Opt::Packet(4), Opt::ExitStatus, Opt::args(ECHO_ARGS)];
    let echo = echo_program()?;
    let port = Port::open(Name::executable(&echo), opts)?;
    let payload = Bytes::from(vec![b'p'; s.payload]);
    let mut trips = Vec::with_capacity(s.trips);
    for i in 0..WARMUP_TRIPS + s.trips {
        let start = Instant::now();
        port.command(payload.clone())?;
        let msg = me.receive_timeout(TIMEOUT)?.ok_or_else(|| timeout("the echo"))?;
        let t = start.elapsed();
        if let Message::Port(_, PortMsg::ExitStatus(st)) = msg {
            return Err(format!(
                "the echo program {} ended with status {} before answering",
                echo.display(),
                st.code()
            )
            .into());
        }
        if msg.data().map(|d| d.bytes().len()) != Some(s.payload) {
            return Err(format!("unexpected message {msg:?}").into());
        }
        if i >= WARMUP_TRIPS {
            trips.push(t);
        }
    }
    port.close()?;
    Ok(trips)
}

/// `raw`: one `write` and `read`s on the fds, as C would; else `std::io` on the pipes.
fn std_latency(s: &Sizes, raw: bool) -> Res<Vec<Duration>> {
    let mut child =
        Command::new(echo_program()?).args(ECHO_ARGS).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let trips = ping_pong(s, |frame, reply| {
        if raw {
            raw_write_all(&stdin, frame)?;
            raw_read_exact(&stdout, reply)
        } else {
            stdin.write_all(frame)?;
            Ok(stdout.read_exact(reply)?)
        }
    })?;
    drop(stdin);
    child.wait()?;
    Ok(trips)
}

/// `WARMUP_TRIPS` untimed, then `s.trips` timed round trips of a `{packet, 4}` frame of
/// `s.payload` bytes, each made by `trip` (write the frame, read the reply), each reply
/// checked against the frame.
fn ping_pong(s: &Sizes, mut trip: impl FnMut(&[u8], &mut [u8]) -> Res<()>) -> Res<Vec<Duration>> {
    let mut frame = (s.payload as u32).to_be_bytes().to_vec();
    frame.resize(4 + s.payload, b'p');
    let mut reply = vec![0; frame.len()];
    let mut trips = Vec::with_capacity(s.trips);
    for i in 0..WARMUP_TRIPS + s.trips {
        let start = Instant::now();
        trip(&frame, &mut reply)?;
        let t = start.elapsed();
        if reply != frame {
            return Err("the echo differs".into());
        }
        if i >= WARMUP_TRIPS {
            trips.push(t);
        }
    }
    Ok(trips)
}

/// C over one Unix socket pair, the echo's stdin and stdout both, as a beamport port: each
/// trip one `write`, then `recv(MSG_DONTWAIT)` again and again for up to beamport's spin
/// (50 µs), then blocking `read`s. The echo spins on its socket the same way.
fn c_socket_latency(s: &Sizes) -> Res<Vec<Duration>> {
    use rustix::net::{socketpair, AddressFamily, RecvFlags, SocketFlags, SocketType};
    let (ours, theirs) = socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    let mut child = Command::new(echo_program()?)
        .args(ECHO_ARGS)
        .stdin(Stdio::from(theirs.try_clone()?))
        .stdout(Stdio::from(theirs))
        .spawn()?;
    let spin = beamport::DEFAULT_SPIN_WAIT;
    let trips = ping_pong(s, |frame, reply| {
        let start = Instant::now();
        raw_write_all(&ours, frame)?;
        let mut got = 0;
        while got < reply.len() {
            match rustix::net::recv(&ours, &mut reply[got..], RecvFlags::DONTWAIT) {
                Ok((0, _)) => return Err("the echo program ended".into()),
                Ok((k, _)) => got += k,
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) if start.elapsed() < spin => {
                    std::hint::spin_loop()
                }
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {
                    raw_read_exact(&ours, &mut reply[got..])?;
                    got = reply.len();
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    })?;
    drop(ours);
    child.wait()?;
    Ok(trips)
}

fn raw_write_all(fd: impl std::os::fd::AsFd, mut buf: &[u8]) -> Res<()> {
    while !buf.is_empty() {
        match rustix::io::write(&fd, buf) {
            Ok(k) => buf = &buf[k..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn raw_read_exact(fd: impl std::os::fd::AsFd, mut buf: &mut [u8]) -> Res<()> {
    while !buf.is_empty() {
        match rustix::io::read(&fd, &mut *buf) {
            Ok(0) => return Err("the echo program ended".into()),
            Ok(k) => buf = &mut buf[k..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

// --- spawn --------------------------------------------------------------------------------

/// Spawns per second: `count` runs of `/bin/true`, `in_flight` at a time.
fn spawn_rate(imp: Impl, count: usize, in_flight: usize) -> Res<f64> {
    let t = match imp {
        Impl::Beamport => fresh(|| beamport_spawn(count, in_flight))?,
        Impl::Std => threaded_spawn(count, in_flight, || {
            let mut child = Command::new("/bin/true").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
            child.wait()
        })?,
        Impl::C => threaded_spawn(count, in_flight, || Command::new("/bin/true").status())?,
        Impl::Otp | Impl::CSplice | Impl::CSocket => return Err(format!("{} does not spawn here", imp.name()).into()),
    };
    Ok(count as f64 / t.as_secs_f64())
}

fn beamport_spawn(count: usize, in_flight: usize) -> Res<Duration> {
    let me = process::current();
    let open = || Port::open(Name::executable("/bin/true"), [Opt::ExitStatus]);
    let start = Instant::now();
    let mut running = HashSet::new();
    for _ in 0..count.min(in_flight) {
        running.insert(open()?.id());
    }
    let mut started = running.len();
    while !running.is_empty() {
        match me.receive_timeout(TIMEOUT)?.ok_or_else(|| timeout("an exit status"))? {
            Message::Port(port, PortMsg::ExitStatus(status)) => {
                if !status.success() {
                    return Err(format!("/bin/true exited with {status:?}").into());
                }
                running.remove(&port.id());
                if started < count {
                    running.insert(open()?.id());
                    started += 1;
                }
            }
            other => return Err(format!("unexpected message {other:?}").into()),
        }
    }
    Ok(start.elapsed())
}

/// `in_flight` threads, each running `spawn` until `count` runs are done.
fn threaded_spawn(
    count: usize,
    in_flight: usize,
    spawn: impl Fn() -> std::io::Result<std::process::ExitStatus> + Sync,
) -> Res<Duration> {
    let next = AtomicUsize::new(0);
    let threads = in_flight.min(count);
    let go = Barrier::new(threads + 1);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> std::io::Result<()> {
                    go.wait();
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        let status = spawn()?;
                        if !status.success() {
                            return Err(std::io::Error::other(format!("/bin/true exited with {status}")));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        go.wait();
        let start = Instant::now();
        for w in workers {
            w.join().map_err(|_| "a spawning thread panicked")??;
        }
        Ok(start.elapsed())
    })
}

// --- concurrency --------------------------------------------------------------------------

fn beamport_concurrency(n: usize) -> Res<f64> {
    let me = process::current();
    let msg = Bytes::from_static(ECHO16);
    let start = Instant::now();
    let ports =
        (0..n).map(|_| Port::open(Name::executable("/bin/cat"), [Opt::Binary])).collect::<Result<Vec<Port>, _>>()?;
    for p in &ports {
        p.command(msg.clone())?;
    }
    let mut left = n * ECHO16.len();
    while left > 0 {
        let m = me.receive_timeout(TIMEOUT)?.ok_or_else(|| timeout("an echo"))?;
        left = left.saturating_sub(m.data().map_or(0, |d| d.bytes().len()));
    }
    for p in &ports {
        p.close()?;
    }
    Ok(start.elapsed().as_secs_f64())
}

fn std_concurrency(n: usize) -> Res<f64> {
    let start = Instant::now();
    let mut children = (0..n).map(|_| spawn_cat()).collect::<Res<Vec<Child>>>()?;
    for c in &mut children {
        c.stdin.as_mut().ok_or("no stdin")?.write_all(ECHO16)?;
    }
    let mut reply = [0; ECHO16.len()];
    for c in &mut children {
        c.stdout.as_mut().ok_or("no stdout")?.read_exact(&mut reply)?;
    }
    for c in &mut children {
        drop(c.stdin.take());
        drop(c.stdout.take());
    }
    let t = start.elapsed();
    for mut c in children {
        c.wait()?;
    }
    Ok(t.as_secs_f64())
}

// --- memory -------------------------------------------------------------------------------

/// This process's resident set, from `/proc/self/status`.
fn rss_bytes() -> Res<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

fn beamport_memory(n: usize) -> Res<f64> {
    // Warm up: the engine, the launcher, the tables and this thread's process exist first.
    let me = process::current();
    let warm = Port::open(Name::executable("/bin/cat"), [Opt::Binary, Opt::ExitStatus])?;
    warm.command(&b"warm"[..])?;
    me.receive_timeout(TIMEOUT)?.ok_or_else(|| timeout("cat's output"))?;
    warm.close()?;
    let mut ports = Vec::with_capacity(n);
    let before = rss_bytes()?;
    for _ in 0..n {
        ports.push(Port::open(Name::executable("/bin/cat"), [Opt::Binary])?);
    }
    let after = rss_bytes()?;
    for p in &ports {
        p.close()?;
    }
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

fn std_memory(n: usize) -> Res<f64> {
    let mut children = Vec::with_capacity(n);
    spawn_cat()?.wait()?;
    let before = rss_bytes()?;
    for _ in 0..n {
        children.push(spawn_cat()?);
    }
    let after = rss_bytes()?;
    for mut c in children {
        drop(c.stdin.take());
        c.wait()?;
    }
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

// --- max_ports ----------------------------------------------------------------------------

fn beamport_max_ports(cap: usize) -> Res<Sample> {
    let mut ports = Vec::new();
    let mut error = "none".to_string();
    while ports.len() < cap {
        match Port::open(Name::executable("/bin/cat"), [Opt::Binary]) {
            Ok(p) => ports.push(p),
            Err(e) => {
                error = e.otp_name().to_string();
                break;
            }
        }
    }
    for p in &ports {
        p.close()?;
    }
    Ok(Sample { error: Some(error), ..Sample::new("ports", "ports", ports.len() as f64) })
}

/// OTP's name for an OS error.
fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EMFILE) => "emfile".into(),
        Some(libc::ENFILE) => "enfile".into(),
        Some(libc::EAGAIN) => "eagain".into(),
        Some(libc::ENOMEM) => "enomem".into(),
        _ => e.to_string(),
    }
}

fn std_max_ports(cap: usize) -> Res<Sample> {
    // beamport raises the soft fd limit to the hard one; give std the same room.
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit)?;
    let mut children = Vec::new();
    let mut error = "none".to_string();
    while children.len() < cap {
        match spawn_cat() {
            Ok(c) => children.push(c),
            Err(e) => {
                error = e.downcast_ref::<std::io::Error>().map_or_else(|| e.to_string(), errno_name);
                break;
            }
        }
    }
    let n = children.len();
    for mut c in children {
        drop(c.stdin.take());
        c.wait()?;
    }
    Ok(Sample { error: Some(error), ..Sample::new("ports", "ports", n as f64) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_measures_memory_per_port_at_the_full_size() {
        assert_eq!(Sizes::quick().memory, Sizes::full().memory);
        assert!(Sizes::quick().describe(Workload::MemoryPerPort).contains("5000 open"));
    }
}
