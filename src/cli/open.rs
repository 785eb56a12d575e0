//! `beamport open`: a port driven from a terminal or a script.
//!
//! Each line read from stdin is one command (with its newline, or without it under
//! `--packet N`, where each line is one framed packet). When stdin ends, the port's input is
//! half-closed and the output is still printed until the port ends. Every message the owner
//! gets is printed on its own line, in iex format; the owner traps exits, so the last line is
//! `{:EXIT, #Port<0.N>, reason}`. The exit status is [`EXIT_STATUS_HELP`]'s.
//!
//! With `--term`, each stdin line is a term in Erlang syntax (`{ok, [1, 2, 3]}`), sent as
//! `term_to_binary` would encode it, and each packet the program sends is printed as the
//! term it decodes to; a line that is not a term is reported with its column and skipped.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use beamport::{find_executable, process, term, Message, Name, OpenError, Opt, Port, PortError, PortMsg};

/// How `beamport open` chooses its exit status (its `--help` and the README say the same).
const EXIT_STATUS_HELP: &str = "\
Exit status:
  with --exit-status, the program's status when it is not 0: its exit code, or 128+N
    if signal N ended it;
  else 0 if the port ended with :normal, 1 if it ended with any other reason (without
    --exit-status the program's status is not known: `beamport open -- false` exits 0);
  127 if PROG does not exist (enoent), 126 if it cannot be executed (eacces), 125 if the
    port could not be opened for another reason (badarg, emfile…), as `env` reports them;
  2 if the command line does not parse.";

/// Arguments of `beamport open`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("Each stdin line is one command; when stdin ends the port's input is half-closed.\n\
Every message the owner gets is printed in iex format; the last is {{:EXIT, #Port<0.N>, reason}}.\n\
{{:spawn, \"a; b\"}} runs only a, as in OTP (sh -c \"exec a; b\"); use --spawn \"sh -c 'a; b'\".\n\
With --term, each stdin line is a term in Erlang syntax and each packet prints as a term.\n\n\
{EXIT_STATUS_HELP}\n\n\
Examples:\n  printf 'hello\\n' | beamport open --exit-status -- /bin/cat\n  \
beamport open --spawn 'echo oops'\n  printf 'a\\nbb\\n' | beamport open --packet 4 -- cat\n  \
echo '{{ok, [1, 2, 3], <<\"bin\">>, #{{a => 1}}}}' | beamport open --term -- cat"))]
pub struct Args {
    /// Boxed, so that `cli::Command` stays small.
    #[command(flatten)]
    spec: Box<Spec>,
}

/// The port to open: name and options.
#[derive(Debug, clap::Args)]
struct Spec {
    /// Run CMD through the shell: `{:spawn, CMD}` (instead of `-- PROG ARGS…`). As in OTP,
    /// the shell runs `exec CMD`, so `a; b` runs only `a`.
    #[arg(long, value_name = "CMD", conflicts_with = "command")]
    spawn: Option<String>,
    /// Data as binaries (the default).
    #[arg(long, conflicts_with = "list")]
    binary: bool,
    /// Data as lists of bytes (printed as charlists).
    #[arg(long)]
    list: bool,
    /// `:exit_status`: print `{:exit_status, N}` when the program ends.
    #[arg(long)]
    exit_status: bool,
    /// `:eof`: keep the port open at EOF and print `:eof`; it is closed once stdin has ended.
    #[arg(long)]
    eof: bool,
    /// `:stderr_to_stdout`.
    #[arg(long)]
    stderr_to_stdout: bool,
    /// `{:cd, DIR}`.
    #[arg(long, value_name = "DIR")]
    cd: Option<PathBuf>,
    /// `{:env, [{K, V}]}` (repeatable); `K=` unsets K.
    #[arg(long, value_name = "K=V")]
    env: Vec<OsString>,
    /// `{:arg0, NAME}` (with `-- PROG`).
    #[arg(long, value_name = "NAME")]
    arg0: Option<OsString>,
    /// `{:packet, N}`, N = 1, 2 or 4: each stdin line, without its newline, is one packet.
    #[arg(long, value_name = "N")]
    packet: Option<String>,
    /// `{:line, L}`: data comes as `{:eol, line}` / `{:noeol, part}` of at most L bytes.
    #[arg(long, value_name = "L")]
    line: Option<String>,
    /// `:nouse_stdio`: the program reads fd 3 and writes fd 4.
    #[arg(long)]
    nouse_stdio: bool,
    /// Terms: each stdin line is a term in Erlang syntax (`{ok, [1, 2, 3]}`, `<<"bin">>`,
    /// `#{a => 1}`), sent encoded as one packet; each packet received prints as a term.
    /// Implies `--packet 4` unless `--packet` is given.
    #[arg(long, conflicts_with = "line")]
    term: bool,
    /// SIGTERM the program N ms after the port is gone, SIGKILL N ms later (default 5000/2000).
    #[arg(long, value_name = "N")]
    grace_ms: Option<u64>,
    /// Any other port option in Elixir syntax, e.g. '{:busy_limits_port, {1, 2}}' (repeatable).
    #[arg(long, value_name = "OPT")]
    opt: Vec<String>,
    /// The program and its arguments: `{:spawn_executable, PROG}, args: ARGS`. A PROG without
    /// `/` is looked up on PATH.
    #[arg(last = true, value_name = "PROG ARGS", required_unless_present = "spawn")]
    command: Vec<OsString>,
}

/// Stdin has ended (sent by the reader thread to the owner).
struct StdinEnded;

/// Runs `beamport open`.
pub fn run(args: Args) -> i32 {
    let args = &args.spec;
    let (name, opts) = match port_spec(args) {
        Ok(x) => x,
        Err(e) => return open_failed(&e),
    };
    let me = process::current();
    me.trap_exit(true);
    let port = match Port::open(name, opts) {
        Ok(p) => p,
        Err(e) => return open_failed(&e),
    };
    let input = if args.term {
        Input::Terms
    } else if args.packet.is_some() {
        Input::Packets
    } else {
        Input::Lines
    };
    let (reader_port, owner) = (port.clone(), me.pid());
    std::thread::Builder::new()
        .name("beamport-open-stdin".into())
        .spawn(move || {
            feed(&reader_port, input);
            process::send(owner, StdinEnded);
        })
        .expect("spawning the stdin reader");

    let mut stdout = std::io::stdout().lock();
    let (mut stdin_ended, mut eof_seen) = (false, false);
    let mut status = None;
    loop {
        let msg = match me.receive() {
            Ok(m) => m,
            Err(e) => {
                eprintln!("beamport open: the owner process died: {e:?}");
                return 1;
            }
        };
        match &msg {
            Message::User(u) if u.downcast_ref::<StdinEnded>().is_some() => stdin_ended = true,
            m => {
                let text = match m {
                    Message::Port(p, PortMsg::Data(d)) if args.term => match term::decode(d.bytes()) {
                        Ok(t) => format!("{{{p:?}, {{:data, {}}}}}", term::iex(&t)),
                        Err(e) => {
                            eprintln!("beamport open: a packet that is not a term: {e}");
                            format!("{m:?}")
                        }
                    },
                    m => format!("{m:?}"),
                };
                // A closed stdout (e.g. `| head`) must not stop us from ending the port properly.
                let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
                match m {
                    Message::Port(p, PortMsg::Eof) if *p == port => eof_seen = true,
                    Message::Port(p, PortMsg::ExitStatus(s)) if *p == port => status = Some(s.code()),
                    Message::Exit(_, reason) if m.port() == Some(&port) => {
                        return exit_code(status, reason.is_normal());
                    }
                    _ => {}
                }
            }
        }
        if stdin_ended && eof_seen {
            eof_seen = false;
            let _ = port.close();
        }
    }
}

/// The exit status of `beamport open` once the port has ended (see [`EXIT_STATUS_HELP`]):
/// the program's status if one came and it is not 0; else 0 for a `:normal` end, 1 for any
/// other.
fn exit_code(status: Option<i32>, normal: bool) -> i32 {
    match status {
        Some(code) if code != 0 => code,
        _ if normal => 0,
        _ => 1,
    }
}

/// What each stdin line is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    /// A command, newline and all.
    Lines,
    /// A packet, without its newline.
    Packets,
    /// A term in Erlang syntax, sent encoded.
    Terms,
}

/// Reads stdin line by line and sends each line to the port; half-closes the port at EOF.
fn feed(port: &Port, input: Input) {
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        number += 1;
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("beamport open: reading stdin: {e}");
                break;
            }
        }
        if input != Input::Lines && line.last() == Some(&b'\n') {
            line.pop();
        }
        if input == Input::Terms {
            match encode_line(&line) {
                Some(Ok(bytes)) => line = bytes,
                Some(Err(e)) => {
                    eprintln!("beamport open: line {number} not sent: {e}");
                    continue;
                }
                None => continue,
            }
        }
        match port.command(std::mem::take(&mut line)) {
            Ok(()) => {}
            Err(e @ PortError::PacketTooLarge(_)) => eprintln!("beamport open: line not sent: {e}"),
            Err(_) => return, // the port is closed: nothing more to send
        }
    }
    let _ = port.close_input();
}

/// A line of Erlang syntax as an encoded term; `None` for a blank line.
fn encode_line(line: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let text = String::from_utf8_lossy(line);
    if text.trim().is_empty() {
        return None;
    }
    Some(term::parse(&text).map_err(|e| e.to_string()).and_then(|t| term::encode(&t).map_err(|e| e.to_string())))
}

/// The port's name and options from the command line.
fn port_spec(args: &Spec) -> Result<(Name, Vec<Opt>), OpenError> {
    let mut opts = Vec::new();
    if !args.list {
        opts.push(Opt::Binary);
    }
    let name = match (&args.spawn, args.command.split_first()) {
        (Some(cmd), _) => Name::spawn(cmd.clone()),
        (None, Some((prog, rest))) => {
            opts.push(Opt::Args(rest.to_vec()));
            Name::executable(resolve(prog)?)
        }
        (None, None) => return Err(badarg("give `-- PROG ARGS…` or `--spawn CMD`")),
    };
    if args.exit_status {
        opts.push(Opt::ExitStatus);
    }
    if args.eof {
        opts.push(Opt::Eof);
    }
    if args.stderr_to_stdout {
        opts.push(Opt::StderrToStdout);
    }
    if args.nouse_stdio {
        opts.push(Opt::NoUseStdio);
    }
    if let Some(dir) = &args.cd {
        opts.push(Opt::Cd(dir.clone()));
    }
    if !args.env.is_empty() {
        opts.push(Opt::Env(args.env.iter().map(env_pair).collect::<Result<_, _>>()?));
    }
    if let Some(a) = &args.arg0 {
        opts.push(Opt::Arg0(a.clone()));
    }
    match &args.packet {
        Some(n) => opts.push(format!("{{:packet, {n}}}").parse()?),
        None if args.term => opts.push(Opt::Packet(4)),
        None => {}
    }
    if let Some(l) = &args.line {
        opts.push(format!("{{:line, {l}}}").parse()?);
    }
    if let Some(ms) = args.grace_ms {
        let d = Duration::from_millis(ms);
        opts.push(Opt::Grace(d, d));
    }
    for o in &args.opt {
        opts.push(o.parse()?);
    }
    Ok((name, opts))
}

/// `PROG` as given if it names a path; else its full path on PATH (`System.find_executable/1`).
fn resolve(prog: &OsString) -> Result<PathBuf, OpenError> {
    let path = PathBuf::from(prog);
    if prog.as_bytes().contains(&b'/') {
        return Ok(path);
    }
    prog.to_str().and_then(find_executable).ok_or(OpenError::Enoent { path })
}

/// `K=V` → `(K, Some(V))`; `K=` → `(K, None)` (unset).
fn env_pair(kv: &OsString) -> Result<(OsString, Option<OsString>), OpenError> {
    let bytes = kv.as_bytes();
    let Some(eq) = bytes.iter().position(|&b| b == b'=') else {
        return Err(badarg(format!("--env {}: expected K=V (or K= to unset)", kv.to_string_lossy())));
    };
    let (k, v) = (&bytes[..eq], &bytes[eq + 1..]);
    if k.is_empty() {
        return Err(badarg(format!("--env {}: empty variable name", kv.to_string_lossy())));
    }
    Ok((OsStr::from_bytes(k).into(), (!v.is_empty()).then(|| OsStr::from_bytes(v).into())))
}

fn badarg(what: impl Into<String>) -> OpenError {
    OpenError::Badarg { what: what.into() }
}

/// Prints why the port could not be opened, with OTP's name for it; the exit status the
/// shell would give: 127 for a missing program, 126 for one that cannot be run, else 125.
fn open_failed(e: &OpenError) -> i32 {
    let text = e.to_string();
    let name = e.otp_name();
    if text.starts_with(name) {
        eprintln!("beamport open: {text}");
    } else {
        eprintln!("beamport open: {name}: {text}");
    }
    match e {
        OpenError::Enoent { .. } => 127,
        OpenError::Eacces { .. } => 126,
        _ => 125,
    }
}
