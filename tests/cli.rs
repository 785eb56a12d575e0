//! The `beamport` binary, run with real stdin and stdout: `beamport open` and `beamport tour`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long one run of the binary may take before the test kills it and fails.
const DEADLINE: Duration = Duration::from_secs(60);

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Stdout's lines with port numbers replaced by `N`.
    fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(normalize).collect()
    }

    /// The data of every `{:data, "…"}` line, joined, as printed (escapes and all).
    fn data(&self) -> String {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix(r#"{#Port<0.N>, {:data, ""#)?.strip_suffix(r#""}}"#).map(str::to_string))
            .collect()
    }
}

/// `#Port<0.17>` → `#Port<0.N>`.
fn normalize(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("#Port<0.") {
        let (head, tail) = rest.split_at(i + "#Port<0.".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        out.push('N');
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// Runs `beamport ARGS` with `stdin` as its input; kills it and panics after [`DEADLINE`].
/// The binary is the one cargo built, or `BEAMPORT_TEST_BIN` for a copy of the suite run
/// elsewhere (`scripts/test.sh` runs one as an unprivileged user).
fn beamport(args: &[&str], stdin: &[u8]) -> Out {
    let bin =
        std::env::var_os("BEAMPORT_TEST_BIN").map_or_else(|| env!("CARGO_BIN_EXE_beamport").into(), PathBuf::from);
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting beamport");
    let pid = child.id();
    let mut input = child.stdin.take().expect("piped stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data); // the program may end without reading it all
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("waiting for beamport"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            let partial = rx.recv_timeout(DEADLINE).ok().and_then(Result::ok);
            let said = partial.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            panic!("beamport {args:?} did not end within {DEADLINE:?}; its output:\n{said}");
        }
    };
    writer.join().expect("stdin writer");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A path in the temp dir that no other test (or test run) uses.
fn temp_path(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    std::env::temp_dir().join(format!("beamport-cli-{tag}-{}-{nanos}", std::process::id()))
}

/// Removes a temp file or dir when dropped, even if the test fails.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0).or_else(|_| std::fs::remove_file(&self.0));
    }
}

#[test]
fn open_cat_with_exit_status() {
    let out = beamport(&["open", "--exit-status", "--", "/bin/cat"], b"hello\n");
    assert_eq!(
        out.lines(),
        [r#"{#Port<0.N>, {:data, "hello\n"}}"#, "{#Port<0.N>, {:exit_status, 0}}", "{:EXIT, #Port<0.N>, :normal}"],
        "stderr: {}",
        out.stderr
    );
    assert_eq!(out.code, 0);
}

#[test]
fn open_spawn_echo() {
    let out = beamport(&["open", "--spawn", "echo oops"], b"");
    assert_eq!(out.lines(), [r#"{#Port<0.N>, {:data, "oops\n"}}"#, "{:EXIT, #Port<0.N>, :normal}"]);
    assert_eq!(out.code, 0);
}

#[test]
fn open_finds_prog_on_path() {
    let out = beamport(&["open", "--", "echo", "-n", "hello world"], b"");
    assert_eq!(out.lines(), [r#"{#Port<0.N>, {:data, "hello world"}}"#, "{:EXIT, #Port<0.N>, :normal}"]);
    assert_eq!(out.code, 0);
}

/// A program that does not exist: 127, as the shell gives.
#[test]
fn open_missing_executable_is_enoent() {
    let out = beamport(&["open", "--", "/nonexistent/beamport-prog"], b"");
    assert_eq!(out.code, 127);
    assert!(out.stderr.contains("enoent") && out.stderr.contains("/nonexistent/beamport-prog"), "{}", out.stderr);
    assert_eq!(out.stdout, "");

    let out = beamport(&["open", "--", "no-such-beamport-prog"], b"");
    assert_eq!(out.code, 127);
    assert!(out.stderr.contains("enoent") && out.stderr.contains("no-such-beamport-prog"), "{}", out.stderr);
}

/// A program that cannot be run: 126, as the shell gives.
#[test]
fn open_non_executable_is_eacces() {
    let path = temp_path("noexec");
    let _cleanup = Cleanup(path.clone());
    std::fs::write(&path, "#!/bin/sh\necho never\n").unwrap();
    let out = beamport(&["open", "--", path.to_str().unwrap()], b"");
    assert_eq!(out.code, 126);
    assert!(out.stderr.contains("eacces") && out.stderr.contains(path.to_str().unwrap()), "{}", out.stderr);
}

/// A port that cannot be opened for another reason: 125, as `env` gives.
#[test]
fn open_unknown_option_is_badarg() {
    let out = beamport(&["open", "--opt", "{:bogus, 1}", "--", "/bin/cat"], b"");
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("badarg") && out.stderr.contains(":bogus"), "{}", out.stderr);

    let out = beamport(&["open", "--packet", "3", "--", "/bin/cat"], b"");
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("badarg") && out.stderr.contains("packet"), "{}", out.stderr);
}

#[test]
fn open_known_option_through_opt() {
    let out = beamport(&["open", "--opt", "{:busy_limits_port, {1, 2}}", "--", "/bin/cat"], b"abc\n");
    assert_eq!(out.lines(), [r#"{#Port<0.N>, {:data, "abc\n"}}"#, "{:EXIT, #Port<0.N>, :normal}"]);
    assert_eq!(out.code, 0);
}

#[test]
fn open_packet_4_round_trip() {
    let out = beamport(&["open", "--packet", "4", "--", "/bin/cat"], b"a\nbb\n");
    assert_eq!(
        out.lines(),
        [r#"{#Port<0.N>, {:data, "a"}}"#, r#"{#Port<0.N>, {:data, "bb"}}"#, "{:EXIT, #Port<0.N>, :normal}"]
    );
    assert_eq!(out.code, 0);
}

#[test]
fn open_list_prints_charlists() {
    let out = beamport(&["open", "--list", "--", "/bin/cat"], b"hi\n");
    assert_eq!(out.lines(), [r"{#Port<0.N>, {:data, 'hi\n'}}", "{:EXIT, #Port<0.N>, :normal}"]);
    assert_eq!(out.code, 0);
}

#[test]
fn open_line_mode() {
    let out = beamport(&["open", "--line", "4", "--", "/bin/cat"], b"abc\nabcdef\n");
    assert_eq!(
        out.lines(),
        [
            r#"{#Port<0.N>, {:data, {:eol, "abc"}}}"#,
            r#"{#Port<0.N>, {:data, {:noeol, "abcd"}}}"#,
            r#"{#Port<0.N>, {:data, {:eol, "ef"}}}"#,
            "{:EXIT, #Port<0.N>, :normal}"
        ]
    );
}

#[test]
fn open_eof_closes_once_stdin_ended() {
    let out = beamport(&["open", "--eof", "--exit-status", "--", "/bin/cat"], b"x\n");
    assert_eq!(
        out.lines(),
        [
            r#"{#Port<0.N>, {:data, "x\n"}}"#,
            "{#Port<0.N>, {:exit_status, 0}}",
            "{#Port<0.N>, :eof}",
            "{:EXIT, #Port<0.N>, :normal}"
        ]
    );
    assert_eq!(out.code, 0);
}

#[test]
fn open_env_and_cd() {
    let dir = temp_path("cd");
    let _cleanup = Cleanup(dir.clone());
    std::fs::create_dir(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let script = r#"printf '%s|%s|%s' "$BEAMPORT_FOO" "${HOME-unset}" "$(pwd)""#;
    let out = beamport(
        &["open", "--env", "BEAMPORT_FOO=bar baz", "--env", "HOME=", "--cd", dir.to_str().unwrap(), "--spawn", script],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.data(), format!("bar baz|unset|{}", dir.display()));
}

#[test]
fn open_arg0() {
    let out = beamport(&["open", "--arg0", "my-name", "--", "/bin/sh", "-c", "echo $0"], b"");
    assert_eq!(out.lines(), [r#"{#Port<0.N>, {:data, "my-name\n"}}"#, "{:EXIT, #Port<0.N>, :normal}"]);
}

#[test]
fn open_stderr_to_stdout() {
    let out = beamport(&["open", "--stderr-to-stdout", "--spawn", "echo err >&2"], b"");
    assert_eq!(out.lines(), [r#"{#Port<0.N>, {:data, "err\n"}}"#, "{:EXIT, #Port<0.N>, :normal}"]);
}

#[test]
fn open_nouse_stdio_with_packets() {
    let out = beamport(&["open", "--nouse-stdio", "--packet", "2", "--spawn", "cat <&3 >&4"], b"q\n");
    assert_eq!(out.lines(), [r#"{#Port<0.N>, {:data, "q"}}"#, "{:EXIT, #Port<0.N>, :normal}"]);
}

#[test]
fn open_abnormal_end_exits_1() {
    // A command to an input-only port ends it with :ebadf, as in OTP.
    let out = beamport(&["open", "--opt", "in", "--grace-ms", "100", "--spawn", "sleep 5"], b"x\n");
    assert_eq!(out.lines(), ["{:EXIT, #Port<0.N>, :ebadf}"]);
    assert_eq!(out.code, 1);
}

#[test]
fn tour_runs_every_example() {
    let out = beamport(&["tour"], b"");
    for want in [r#"{:data, "hello"}"#, ":closed", r#"{:data, "oops\n"}"#, r#"{:data, "hello world\n"}"#] {
        assert!(out.stdout.contains(want), "{want} missing from:\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("MISMATCH"), "{}", out.stdout);
    assert_eq!(out.code, 0, "{}", out.stdout);
}

/// With `--exit-status`, `beamport open` exits with the program's own status: its exit code,
/// or 128 + N when signal N ended it.
#[test]
fn open_exit_status_is_the_programs() {
    let out = beamport(&["open", "--exit-status", "--", "false"], b"");
    assert_eq!(out.lines(), ["{#Port<0.N>, {:exit_status, 1}}", "{:EXIT, #Port<0.N>, :normal}"]);
    assert_eq!(out.code, 1);

    let out = beamport(&["open", "--exit-status", "--spawn", "exit 0; echo never"], b"");
    assert_eq!(out.code, 127, "`exec exit 0` is not a command: {}", out.stderr);

    let out = beamport(&["open", "--exit-status", "--spawn", "kill -TERM $$"], b"");
    assert_eq!(out.lines(), ["{#Port<0.N>, {:exit_status, 143}}", "{:EXIT, #Port<0.N>, :normal}"]);
    assert_eq!(out.code, 143);

    // Without `--exit-status` the status is not known: the port's own end decides.
    let out = beamport(&["open", "--", "false"], b"");
    assert_eq!(out.lines(), ["{:EXIT, #Port<0.N>, :normal}"]);
    assert_eq!(out.code, 0);
}

/// A directory as PROG: where it passes the access check (as root) the port opens and
/// `execve` fails with EACCES, status 13, as on the VM; where the check refuses it, the port
/// does not open (`eacces`, 126).
#[test]
fn open_a_directory() {
    let out = beamport(&["open", "--exit-status", "--", "/tmp"], b"");
    if out.stdout.is_empty() {
        assert_eq!(out.code, 126);
        assert!(out.stderr.contains("eacces") && out.stderr.contains("/tmp"), "{}", out.stderr);
    } else {
        assert_eq!(out.lines(), ["{#Port<0.N>, {:exit_status, 13}}", "{:EXIT, #Port<0.N>, :normal}"]);
        assert_eq!(out.code, 13);
    }
}

/// A `--cd` that does not exist: the program does not run; the child says so on the host's
/// stderr and exits with ENOENT (2), as on the VM, whichever process forks it.
#[test]
fn open_bad_cd() {
    for launcher_forks in ["0", "1"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_beamport"));
        cmd.args(["open", "--exit-status", "--stderr-to-stdout", "--cd", "/nonexistent_dir", "--", "/bin/pwd"]);
        if launcher_forks == "1" {
            cmd.env("BEAMPORT_SPAWNING", "launcher");
        }
        let out = cmd.stdin(Stdio::null()).output().expect("run beamport");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let lines: Vec<String> = stdout.lines().map(normalize).collect();
        assert_eq!(lines, ["{#Port<0.N>, {:exit_status, 2}}", "{:EXIT, #Port<0.N>, :normal}"], "{stderr}");
        assert_eq!(stderr, "spawn: Could not cd to /nonexistent_dir\r\n", "launcher forks: {launcher_forks}");
        assert_eq!(out.status.code(), Some(2), "launcher forks: {launcher_forks}");
    }
}

/// Without `--stderr-to-stdout`, what the program writes on stderr is not data: it goes to
/// `beamport open`'s own stderr.
#[test]
fn open_stderr_stays_the_hosts() {
    let out = beamport(&["open", "--spawn", "sh -c 'echo err >&2; echo out'"], b"");
    assert_eq!(out.lines(), [r#"{#Port<0.N>, {:data, "out\n"}}"#, "{:EXIT, #Port<0.N>, :normal}"]);
    assert_eq!(out.stderr, "err\n");
}

/// `{:spawn, "a; b"}` runs only `a`, as OTP does (`sh -c "exec a; b"`); the README and
/// `Name::spawn` say so.
#[test]
fn open_spawn_runs_only_the_first_command() {
    let out = beamport(&["open", "--spawn", "echo a; echo b"], b"");
    assert_eq!(out.lines(), [r#"{#Port<0.N>, {:data, "a\n"}}"#, "{:EXIT, #Port<0.N>, :normal}"]);
    let out = beamport(&["open", "--spawn", "sh -c 'echo a; echo b'"], b"");
    assert_eq!(out.data(), "a\\nb\\n", "{}", out.stdout); // in one message or two
    assert_eq!(out.lines().last().map(String::as_str), Some("{:EXIT, #Port<0.N>, :normal}"));
}

/// `beamport bench`'s latency workload runs its echo program as `/proc/<its own pid>/exe`,
/// a path that names the host's file only in the host's view: it must run whoever runs the
/// bench (as a user other than root, the launcher's user namespace may not follow it at all).
#[test]
fn bench_latency_runs_its_echo_program() {
    let out = beamport(&["bench", "--only", "latency", "--quick", "--no-otp", "--rounds", "1"], b"");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}
