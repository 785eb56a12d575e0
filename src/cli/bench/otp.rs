//! The Erlang VM's side: the escripts of `bench/otp/`, built into the binary, written to a
//! temporary directory and run with the `escript` found on `PATH`. Each prints one JSON line
//! per round in the format of `beamport bench --json`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::workloads::{Impl, Res, Sample, Sizes, Workload, ECHO_ARGS, IN_FLIGHT};

/// The escripts, by file name.
const SCRIPTS: [(&str, &str); 8] = [
    ("throughput.escript", include_str!("../../../bench/otp/throughput.escript")),
    ("latency.escript", include_str!("../../../bench/otp/latency.escript")),
    ("spawn.escript", include_str!("../../../bench/otp/spawn.escript")),
    ("concurrency.escript", include_str!("../../../bench/otp/concurrency.escript")),
    ("memory.escript", include_str!("../../../bench/otp/memory.escript")),
    ("max_ports.escript", include_str!("../../../bench/otp/max_ports.escript")),
    ("term_roundtrip.escript", include_str!("../../../bench/otp/term_roundtrip.escript")),
    ("term_echo.escript", include_str!("../../../bench/otp/term_echo.escript")),
];

/// The longest one escript may run.
const ESCRIPT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the VM's forker gets to exit after the VM did.
const FORKER_GRACE: Duration = Duration::from_secs(5);

/// The Erlang VM, ready to run the escripts.
#[derive(Debug)]
pub struct Otp {
    escript: PathBuf,
    dir: PathBuf,
    /// `erlang:system_info(otp_release)` and the emulator flavor, e.g. `25 (jit)`.
    pub version: String,
    /// Rounds run, and forkers left behind, per workload.
    log: Mutex<BTreeMap<Workload, (usize, Vec<Forker>)>>,
}

/// A VM's forker found alive after the VM exited.
#[derive(Clone, Debug)]
struct Forker {
    /// Where it was blocked (`/proc/PID/wchan`).
    wchan: String,
    /// Its children that had exited and were not reaped.
    zombies: usize,
}

impl Otp {
    /// Finds `escript` on `PATH` and writes the scripts out; `None` if there is no VM.
    pub fn find() -> Option<Otp> {
        let escript = beamport::find_executable("escript")?;
        let dir = std::env::temp_dir().join(format!("beamport-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let mut otp = Otp { escript, dir, version: String::new(), log: Mutex::default() };
        for (name, text) in SCRIPTS {
            std::fs::write(otp.dir.join(name), text).ok()?;
        }
        let version = Command::new(beamport::find_executable("erl")?)
            .args(["-noshell", "-eval"])
            .arg(
                "io:format(\"~s (~s)\", [erlang:system_info(otp_release), \
                 erlang:system_info(emu_flavor)]), halt().",
            )
            .stderr(Stdio::null())
            .output()
            .ok()?;
        otp.version = String::from_utf8_lossy(&version.stdout).into_owned();
        Some(otp)
    }

    /// Runs one round of `w` in a new VM; for a workload the VM hosts, with `imp`'s port
    /// program.
    pub fn run(&self, w: Workload, imp: Impl, s: &Sizes) -> Res<Vec<Sample>> {
        let exe = super::workloads::self_exe();
        let (script, args): (&str, Vec<String>) = match w {
            Workload::Throughput => ("throughput", vec![s.throughput_bytes.to_string(), s.chunk.to_string()]),
            Workload::Latency => {
                let mut a = vec![s.trips.to_string(), s.payload.to_string(), exe.to_string_lossy().into_owned()];
                a.extend(ECHO_ARGS.map(String::from));
                ("latency", a)
            }
            Workload::SpawnSeq => ("spawn", vec![s.spawn_seq.to_string(), "1".into()]),
            Workload::SpawnPar64 => ("spawn", vec![s.spawn_par.to_string(), IN_FLIGHT.to_string()]),
            Workload::Concurrency5000 => ("concurrency", vec![s.concurrency.to_string()]),
            Workload::MemoryPerPort => ("memory", vec![s.memory.to_string()]),
            Workload::MaxPorts => ("max_ports", vec![s.max_ports_cap.to_string()]),
            Workload::TermRoundtrip => {
                let mut a = vec![s.term_map_trips.to_string(), s.term_binary_trips.to_string(), imp.name().into()];
                if imp == Impl::Otp {
                    a.push(self.escript.to_string_lossy().into_owned());
                    a.push(self.dir.join("term_echo.escript").to_string_lossy().into_owned());
                } else {
                    a.push(super::workloads::term_echo_program()?.to_string_lossy().into_owned());
                }
                ("term_roundtrip", a)
            }
        };
        // Output goes to files, not pipes: the VM's forker, `erl_child_setup`, inherits
        // the VM's stdout and stderr and may outlive it (see `reap_forker`).
        let (out_path, err_path) = (self.dir.join("stdout"), self.dir.join("stderr"));
        let mut child = Command::new(&self.escript)
            .arg(self.dir.join(format!("{script}.escript")))
            .arg("1")
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&out_path)?)
            .stderr(File::create(&err_path)?)
            .spawn()?;
        let deadline = Instant::now() + ESCRIPT_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                child.wait()?;
                return Err(format!("{script}.escript timed out after {ESCRIPT_TIMEOUT:?}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let forkers = reap_forker(&out_path);
        for f in &forkers {
            eprintln!(
                "beamport bench: {} by otp: the VM's erl_child_setup outlived it, blocked in {} with {} zombie children; killed",
                w.name(),
                f.wchan,
                f.zombies
            );
        }
        let mut log = self.log.lock().expect("log");
        let entry = log.entry(w).or_default();
        entry.0 += 1;
        entry.1.extend(forkers);
        drop(log);
        let out = std::fs::read_to_string(&out_path)?;
        if !status.success() {
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            let first = err.lines().next().unwrap_or("");
            return Err(format!("{script}.escript failed ({status}): {first}").into());
        }
        parse_lines(&out, w, if w.hosted_by_vm() { imp } else { Impl::Otp })
    }

    /// What went wrong on the VM's side besides the measurements: forkers left behind.
    pub fn notes(&self) -> Vec<String> {
        let log = self.log.lock().expect("log");
        let mut notes = Vec::new();
        for (w, (rounds, forkers)) in log.iter().filter(|(_, (_, f))| !f.is_empty()) {
            let mut wchans: Vec<&str> = forkers.iter().map(|f| f.wchan.as_str()).collect();
            wchans.sort_unstable();
            wchans.dedup();
            let zombies = forkers.iter().map(|f| f.zombies);
            let (min, max) = (zombies.clone().min().unwrap_or(0), zombies.max().unwrap_or(0));
            let range = if min == max { min.to_string() } else { format!("{min}–{max}") };
            notes.push(format!(
                "`otp`, `{}`: in {} of {rounds} rounds the VM's forker, `erl_child_setup`, was still alive \
                 {FORKER_GRACE:?} after the VM exited, blocked in `{}` with {range} unreaped (zombie) \
                 children; the bench killed it.",
                w.name(),
                forkers.len(),
                wchans.join("`/`")
            ));
        }
        notes
    }
}

impl Drop for Otp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Finds the `erl_child_setup` of a VM that has exited (the one whose stdout is
/// `stdout`), gives it [`FORKER_GRACE`] to exit, then kills it; returns those it killed.
///
/// OTP 25's forker reaps children in its SIGCHLD handler and writes 8 bytes per child to a
/// self-pipe that only its main loop reads: when more than 8192 children end at once (the
/// 64 KiB pipe's worth, as after `max_ports`), the handler blocks on the full pipe forever,
/// and the forker stays behind with the remaining children as zombies.
fn reap_forker(stdout: &Path) -> Vec<Forker> {
    let deadline = Instant::now() + FORKER_GRACE;
    loop {
        let forkers: Vec<i32> = processes()
            .filter(|&pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "erl_child_setup")
                    && std::fs::read_link(format!("/proc/{pid}/fd/1")).is_ok_and(|l| l == stdout)
            })
            .collect();
        if forkers.is_empty() {
            return Vec::new();
        }
        if Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let mut killed = Vec::new();
        for pid in forkers {
            let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
            let zombies = processes()
                .filter(|&p| {
                    std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                        // "pid (comm) state ppid …"; comm may hold spaces, so split after ')'.
                        let fields: Vec<&str> =
                            stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
                        fields.first() == Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str())
                    })
                })
                .count();
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
            let wchan = if wchan.is_empty() { "?".to_string() } else { wchan };
            killed.push(Forker { wchan, zombies });
        }
        return killed;
    }
}

/// The pids of every process on the machine.
pub fn processes() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc").into_iter().flatten().filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// The samples of `w` by `imp` in JSON lines such as the escripts and `--child` print.
pub fn parse_lines(text: &str, w: Workload, imp: Impl) -> Res<Vec<Sample>> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
        if field(line, "workload") != Some(w.name()) || field(line, "impl") != Some(imp.name()) {
            return Err(format!("unexpected line: {line}").into());
        }
        let get = |key| field(line, key).ok_or_else(|| format!("no {key:?} in {line}"));
        samples.push(Sample {
            metric: get("metric")?.to_string(),
            unit: get("unit")?.to_string(),
            value: get("value")?.parse().map_err(|e| format!("bad value in {line}: {e}"))?,
            error: field(line, "error").map(String::from),
            spawns: match (field(line, "by_opener"), field(line, "by_launcher")) {
                (Some(o), Some(l)) => Some(beamport::doctor::Spawns {
                    by_opener: o.parse().map_err(|e| format!("bad by_opener in {line}: {e}"))?,
                    by_launcher: l.parse().map_err(|e| format!("bad by_launcher in {line}: {e}"))?,
                }),
                _ => None,
            },
        });
    }
    if samples.is_empty() {
        return Err(format!("no result for {} by {}", w.name(), imp.name()).into());
    }
    Ok(samples)
}

/// The value of `"key":` in a flat JSON object: a string's contents (no escapes are
/// expected) or a number's text.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let rest = line[line.find(&pat)? + pat.len()..].trim_start();
    match rest.strip_prefix('"') {
        Some(s) => s.split('"').next(),
        None => rest.split([',', '}']).next().map(str::trim),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escript_lines() {
        let text = "{\"workload\":\"max_ports\",\"impl\":\"otp\",\"metric\":\"ports\",\"unit\":\"ports\",\
                    \"value\":9989,\"error\":\"emfile\"}\n";
        let s = parse_lines(text, Workload::MaxPorts, Impl::Otp).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].value, 9989.0);
        assert_eq!(s[0].error.as_deref(), Some("emfile"));
        assert!(parse_lines(text, Workload::Latency, Impl::Otp).is_err());
        assert!(parse_lines("", Workload::Latency, Impl::Otp).is_err());
    }
}
