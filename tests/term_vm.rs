//! beamport's term codec against the real VM, both ways: terms the VM makes go through
//! `examples/term_echo` (decoded and encoded again in Rust) and must come back `=:=`; terms
//! Rust makes go through an Erlang-written echo and must come back the same. Run with
//! `BEAMPORT_TERM_SEED=N` (and `BEAMPORT_TERM_COUNT=N`) to try other random terms.

use std::process::Command;
use std::time::Duration;

use beamport::term::{self, Term};
use beamport::{process, Name, Opt, Port};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[path = "term/mod.rs"]
mod term_support;
use term_support::{any_term, same, script, special_terms, term_example};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn escript() -> std::path::PathBuf {
    beamport::find_executable("escript").expect("escript on PATH (scripts/test.sh installs erlang-base)")
}

#[test]
fn vm_terms_come_back_through_the_rust_echo() {
    let echo = term_example("term_echo");
    let count = env_number("BEAMPORT_TERM_COUNT", 4000);
    let seed = env_number("BEAMPORT_TERM_SEED", 20_260_101);
    let out = Command::new(escript())
        .arg(script("roundtrip.escript"))
        .arg(&echo)
        .args([count.to_string(), seed.to_string(), term::MAX_DEPTH.to_string()])
        .output()
        .expect("run roundtrip.escript");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "seed {seed}: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rust_terms_come_back_through_an_erlang_echo() {
    let me = process::current();
    let opts = [Opt::Binary, Opt::Packet(4), Opt::args([script("echo.escript")])];
    let port = Port::open(Name::executable(escript()), opts).unwrap();
    let round_trip = |t: &Term, compressed: bool| -> Result<(), String> {
        if compressed {
            port.command(term::encode_compressed(t).unwrap()).unwrap();
        } else {
            port.command_term(t).unwrap();
        }
        let back = me.receive_term_timeout(&port, Duration::from_secs(60)).unwrap().ok_or("no reply in 60 s")?;
        if same(&back, t) {
            Ok(())
        } else {
            Err(format!("sent {}\ngot back {}", term::iex(t), term::iex(&back)))
        }
    };
    for t in special_terms() {
        round_trip(&t, false).unwrap();
        round_trip(&t, true).unwrap();
    }
    let seed = env_number("BEAMPORT_TERM_SEED", 20_260_101);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases: env_number("BEAMPORT_TERM_COUNT", 4000) as u32 / 2,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    runner
        .run(&(any_term(), any::<bool>()), |(t, compressed)| {
            round_trip(&t, compressed).map_err(|e| TestCaseError::fail(format!("seed {seed}: {e}")))
        })
        .unwrap();
    port.close().unwrap();
}

#[test]
fn floats_print_as_iex_prints_them() {
    let out = Command::new(escript()).arg(script("floats.escript")).args(["3000", "7"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines() {
        let (bits, vm) = line.split_once(' ').unwrap();
        let f = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        assert_eq!(term::iex(&Term::from(term::Float { value: f })).to_string(), vm, "{bits}");
    }
    assert!(text.lines().count() > 3000);
}
