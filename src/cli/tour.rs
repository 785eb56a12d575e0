//! `beamport tour`: every example of Elixir 1.5's `Port` docs, run with beamport and printed
//! the way iex prints it.
//!
//! Each step prints the Elixir code as `iex>` lines, then what iex would print: the value of
//! the expression and, for `flush()`, every message the owner got. iex is driven by a human,
//! so each reply arrives before the next line is typed; the tour does the same by waiting
//! (with a deadline) until the messages a step causes have arrived. Every printed message is
//! compared with what the docs (and OTP) say; a difference prints `MISMATCH: …` and makes
//! the tour exit with status 1.

use std::fmt::Display;
use std::path::Path;
use std::time::{Duration, Instant};

use beamport::{find_executable, process, Item, ItemValue, Message, Name, Opt, Pid, Port, Process, Reason, Request};

/// How long a step may wait for the messages it expects.
const WAIT: Duration = Duration::from_secs(10);

/// Arguments of `beamport tour`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `beamport tour`: 0 when every example behaved as documented, 1 otherwise.
pub fn run(_args: Args) -> i32 {
    println!("# beamport tour: the examples of Elixir 1.5's Port docs, run with beamport");
    let mut t = Tour { me: process::current(), held: Vec::new(), mismatches: 0 };
    t.cat_with_messages();
    t.spawn_echo();
    t.spawn_executable();
    t.function_api();
    t.connect();
    t.info();
    t.exit_signals();
    t.zombies();
    println!();
    if t.mismatches == 0 {
        println!("# every example behaved as documented");
        0
    } else {
        println!("# {} mismatch(es)", t.mismatches);
        1
    }
}

/// The iex session: the shell process, and the messages that arrived but were not flushed.
struct Tour {
    me: Process,
    held: Vec<Message>,
    mismatches: usize,
}

/// What the connect example's second process is asked.
enum KeeperCall {
    /// Send me the messages you got, once you have at least this many.
    Report(Pid, usize),
    /// End.
    Stop,
}

/// `{port, body}` as iex prints it.
fn from_port(port: &Port, body: &str) -> String {
    format!("{{{port:?}, {body}}}")
}

/// `{:EXIT, port, reason}` as iex prints it.
fn exit_msg(port: &Port, reason: &str) -> String {
    format!("{{:EXIT, {port:?}, {reason}}}")
}

impl Tour {
    fn section(&self, title: &str) {
        println!();
        println!("## {title}");
        println!();
    }

    fn note(&self, text: &str) {
        println!("# {text}");
    }

    /// One iex line and the value iex prints for it.
    fn iex(&self, code: &str, value: impl Display) {
        println!("iex> {code}");
        println!("{value}");
    }

    fn mismatch(&mut self, what: impl Display) {
        println!("MISMATCH: {what}");
        self.mismatches += 1;
    }

    fn check(&mut self, ok: bool, what: impl Display) {
        if !ok {
            self.mismatch(what);
        }
    }

    /// Waits until `n` messages wait in the mailbox (as a human typing the next line would).
    fn settle(&mut self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.held.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.me.receive_timeout(left) {
                Ok(Some(m)) => self.held.push(m),
                Ok(None) => {
                    let got = self.held.len();
                    self.mismatch(format!("waited {WAIT:?} for {n} message(s), got {got}"));
                    return;
                }
                Err(e) => {
                    self.mismatch(format!("the shell process died: {e:?}"));
                    return;
                }
            }
        }
    }

    /// `flush()`: waits for `expected.len()` messages, prints every message waiting, and
    /// compares them with `expected`.
    fn flush(&mut self, expected: &[String]) {
        self.settle(expected.len());
        println!("iex> flush()");
        let mut got = std::mem::take(&mut self.held);
        match self.me.flush() {
            Ok(more) => got.extend(more),
            Err(e) => self.mismatch(format!("the shell process died: {e:?}")),
        }
        let got: Vec<String> = got.iter().map(|m| format!("{m:?}")).collect();
        for line in &got {
            println!("{line}");
        }
        println!(":ok");
        if got != expected {
            self.mismatch(format!("expected {expected:?}, got {got:?}"));
        }
    }

    /// Opens a port, or records the failure.
    fn open(&mut self, code: &str, name: Name, opts: impl IntoIterator<Item = Opt>) -> Option<Port> {
        match Port::open(name, opts) {
            Ok(port) => {
                self.iex(code, format_args!("{port:?}"));
                Some(port)
            }
            Err(e) => {
                println!("iex> {code}");
                self.mismatch(format!("could not open the port: {e}"));
                None
            }
        }
    }

    /// Waits, without printing, until `port` has ended (as it has by the time a human types
    /// the next example): monitors it and takes only that `:DOWN`.
    fn await_gone(&mut self, port: &Port) {
        let r = port.monitor();
        let down = self.me.receive_match(|m| matches!(m, Message::Down(x, _, _) if *x == r), Some(WAIT));
        if !matches!(down, Ok(Some(_))) {
            self.mismatch(format!("{port:?} did not end within {WAIT:?}"));
        }
    }

    /// Waits, without printing, until process `pid` has ended.
    fn await_exit(&mut self, pid: Pid) {
        let r = process::monitor(pid);
        let down = self.me.receive_match(|m| matches!(m, Message::Down(x, _, _) if *x == r), Some(WAIT));
        if !matches!(down, Ok(Some(_))) {
            self.mismatch(format!("{pid:?} did not end within {WAIT:?}"));
        }
    }

    /// Port.close/1, printed.
    fn close(&mut self, port: &Port) {
        let r = port.close();
        self.check(r.is_ok(), format!("Port.close failed: {r:?}"));
        self.iex("Port.close(port)", if r.is_ok() { "true" } else { "** (ArgumentError) argument error" });
    }

    /// The first example: `cat` driven by the message API.
    fn cat_with_messages(&mut self) {
        self.section("1. The message API: `cat`");
        let Some(port) = self.open("port = Port.open({:spawn, \"cat\"}, [:binary])", Name::spawn("cat"), [Opt::Binary])
        else {
            return;
        };
        let me = self.me.pid();
        port.send(me, Request::command("hello"));
        self.iex("send port, {self(), {:command, \"hello\"}}", format_args!("{{{me:?}, {{:command, \"hello\"}}}}"));
        self.settle(1);
        port.send(me, Request::command("world"));
        self.iex("send port, {self(), {:command, \"world\"}}", format_args!("{{{me:?}, {{:command, \"world\"}}}}"));
        self.flush(&[from_port(&port, "{:data, \"hello\"}"), from_port(&port, "{:data, \"world\"}")]);
        port.send(me, Request::Close);
        self.iex("send port, {self(), :close}", format_args!("{{{me:?}, :close}}"));
        self.flush(&[from_port(&port, ":closed")]);
        self.await_gone(&port);
    }

    /// `{:spawn, "echo oops"}`.
    fn spawn_echo(&mut self) {
        self.section("2. {:spawn, command}: `echo oops`");
        let Some(port) =
            self.open("port = Port.open({:spawn, \"echo oops\"}, [:binary])", Name::spawn("echo oops"), [Opt::Binary])
        else {
            return;
        };
        self.flush(&[from_port(&port, "{:data, \"oops\\n\"}")]);
        self.await_gone(&port);
    }

    /// `System.find_executable/1` and `{:spawn_executable, path}` with `args:`.
    fn spawn_executable(&mut self) {
        self.section("3. {:spawn_executable, path} with args");
        let Some(path) = find_executable("echo") else {
            self.mismatch("System.find_executable(\"echo\") found nothing");
            return;
        };
        self.iex("path = System.find_executable(\"echo\")", format_args!("{:?}", path.to_string_lossy()));
        let Some(port) = self.open(
            "port = Port.open({:spawn_executable, path}, [:binary, args: [\"hello world\"]])",
            Name::executable(&path),
            [Opt::Binary, Opt::args(["hello world"])],
        ) else {
            return;
        };
        self.flush(&[from_port(&port, "{:data, \"hello world\\n\"}")]);
        self.await_gone(&port);
    }

    /// `Port.command/2` and `Port.close/1`.
    fn function_api(&mut self) {
        self.section("4. The function API: Port.command/2, Port.close/1");
        let Some(port) = self.open("port = Port.open({:spawn, \"cat\"}, [:binary])", Name::spawn("cat"), [Opt::Binary])
        else {
            return;
        };
        let r = port.command("hello");
        self.check(r.is_ok(), format!("Port.command failed: {r:?}"));
        self.iex("Port.command(port, \"hello\")", r.is_ok());
        self.flush(&[from_port(&port, "{:data, \"hello\"}")]);
        self.close(&port);
        self.note("Port.close/1 sends no :closed (that is the reply to the {pid, :close} message)");
        self.flush(&[]);
        let r = port.command("again");
        self.check(r.is_err(), "Port.command on a closed port succeeded");
        self.iex("Port.command(port, \"again\")", "** (ArgumentError) argument error");
        self.await_gone(&port);
    }

    /// `{:connect, new_pid}` and `Port.connect/2`.
    fn connect(&mut self) {
        self.section("5. Changing the owner: {:connect, new_pid} and Port.connect/2");
        let Some(port) = self.open("port = Port.open({:spawn, \"cat\"}, [:binary])", Name::spawn("cat"), [Opt::Binary])
        else {
            return;
        };
        let me = self.me.pid();
        let new_pid = process::spawn(keeper);
        self.iex("new_pid = spawn(fn -> Process.sleep(:infinity) end)", format_args!("{new_pid:?}"));
        port.send(me, Request::Connect(new_pid));
        self.iex("send port, {self(), {:connect, new_pid}}", format_args!("{{{me:?}, {{:connect, {new_pid:?}}}}}"));
        self.note("the old owner gets :connected");
        self.flush(&[from_port(&port, ":connected")]);
        let r = port.command("hi");
        self.check(r.is_ok(), format!("Port.command failed: {r:?}"));
        self.iex("Port.command(port, \"hi\")", r.is_ok());
        self.note("the data now goes to the new owner");
        self.flush(&[]);
        self.mailbox_of(new_pid, &[from_port(&port, "{:data, \"hi\"}")]);
        let r = port.connect(me);
        self.check(r.is_ok(), format!("Port.connect failed: {r:?}"));
        self.iex("Port.connect(port, self())", r.is_ok());
        let r = port.command("back");
        self.check(r.is_ok(), format!("Port.command failed: {r:?}"));
        self.iex("Port.command(port, \"back\")", r.is_ok());
        self.note("Port.connect/2 answers nothing; the data comes back to us");
        self.flush(&[from_port(&port, "{:data, \"back\"}")]);
        self.mailbox_of(new_pid, &[from_port(&port, "{:data, \"hi\"}")]);
        process::send(new_pid, KeeperCall::Stop);
        self.await_exit(new_pid);
        self.close(&port);
        self.await_gone(&port);
    }

    /// `Process.info(pid, :messages)` for the connect example's second process.
    fn mailbox_of(&mut self, pid: Pid, expected: &[String]) {
        process::send(pid, KeeperCall::Report(self.me.pid(), expected.len()));
        let reply = self
            .me
            .receive_match(|m| matches!(m, Message::User(u) if u.downcast_ref::<Vec<String>>().is_some()), Some(WAIT));
        let got = match reply {
            Ok(Some(Message::User(u))) => u.downcast::<Vec<String>>().unwrap_or_default(),
            _ => {
                self.mismatch(format!("{pid:?} did not report its mailbox"));
                return;
            }
        };
        self.iex("Process.info(new_pid, :messages)", format_args!("{{:messages, [{}]}}", got.join(", ")));
        if got != expected {
            self.mismatch(format!("{pid:?} got {got:?}, expected {expected:?}"));
        }
    }

    /// `Port.info/1`, `Port.info/2`, `Port.list/0`.
    fn info(&mut self) {
        self.section("6. Port.info/1, Port.info/2, Port.list/0");
        let Some(port) = self.open("port = Port.open({:spawn, \"cat\"}, [:binary])", Name::spawn("cat"), [Opt::Binary])
        else {
            return;
        };
        let me = self.me.pid();
        match port.info() {
            Some(info) => {
                self.iex("Port.info(port)", format_args!("{info:?}"));
                self.check(info.name == "cat", format!("name {:?}", info.name));
                self.check(info.links == [me], format!("links {:?}", info.links));
                self.check(info.connected == me, format!("connected {:?}", info.connected));
                self.check(info.id == port.id(), format!("id {}", info.id));
            }
            None => self.mismatch("Port.info/1 gave nil for an open port"),
        }
        let os_pid = self.item(&port, Item::OsPid, "os_pid");
        match os_pid {
            Some(ItemValue::OsPid(Some(p))) => {
                let exists = Path::new(&format!("/proc/{p}")).exists();
                self.check(exists, format!("/proc/{p} does not exist: the os_pid is not in our PID namespace"));
            }
            other => self.mismatch(format!("os_pid is {other:?}")),
        }
        let name = self.item(&port, Item::Name, "name");
        self.check(name == Some(ItemValue::Name("cat".into())), format!("name is {name:?}"));
        let connected = self.item(&port, Item::Connected, "connected");
        self.check(connected == Some(ItemValue::Pid(me)), format!("connected is {connected:?}"));
        let r = port.command("hi");
        self.check(r.is_ok(), format!("Port.command failed: {r:?}"));
        self.iex("Port.command(port, \"hi\")", r.is_ok());
        self.flush(&[from_port(&port, "{:data, \"hi\"}")]);
        let output = self.item(&port, Item::Output, "output");
        self.check(output == Some(ItemValue::Int(2)), format!("output is {output:?}"));
        let input = self.item(&port, Item::Input, "input");
        self.check(input == Some(ItemValue::Int(2)), format!("input is {input:?}"));
        let list = Port::list();
        self.iex("Port.list()", format_args!("{list:?}"));
        self.check(list == [port.clone()], format!("Port.list() is {list:?}, expected only {port:?}"));
        self.close(&port);
        let info = port.info();
        self.iex("Port.info(port)", if info.is_none() { "nil".to_string() } else { format!("{info:?}") });
        self.check(info.is_none(), "Port.info/1 of a closed port is not nil");
        let os_pid = self.item(&port, Item::OsPid, "os_pid");
        self.check(os_pid.is_none(), "Port.info/2 of a closed port is not nil");
        self.await_gone(&port);
    }

    /// `Port.info(port, :item)`, printed.
    fn item(&mut self, port: &Port, item: Item, name: &str) -> Option<ItemValue> {
        let v = port.info_item(item);
        let shown = v.as_ref().map_or("nil".to_string(), |v| format!("{{:{name}, {v:?}}}"));
        self.iex(&format!("Port.info(port, :{name})"), shown);
        v
    }

    /// Exit signals: `{:EXIT, port, reason}` for a trapping owner; death for one that is not.
    fn exit_signals(&mut self) {
        self.section("7. Exit signals");
        let was = self.me.trap_exit(true);
        self.iex("Process.flag(:trap_exit, true)", was);
        self.note("a port whose program ends closes with :normal; a trapping owner sees it");
        if let Some(port) =
            self.open("port = Port.open({:spawn, \"echo bye\"}, [:binary])", Name::spawn("echo bye"), [Opt::Binary])
        {
            self.flush(&[from_port(&port, "{:data, \"bye\\n\"}"), exit_msg(&port, ":normal")]);
        }
        self.note("Port.close/1 and {pid, :close} send :normal at once too");
        if let Some(port) =
            self.open("port = Port.open({:spawn, \"cat\"}, [:binary])", Name::spawn("cat"), [Opt::Binary])
        {
            let me = self.me.pid();
            port.send(me, Request::Close);
            self.iex("send port, {self(), :close}", format_args!("{{{me:?}, :close}}"));
            self.flush(&[exit_msg(&port, ":normal"), from_port(&port, ":closed")]);
        }
        self.note("a port crashing with a reason of its own: Process.exit/2");
        if let Some(port) =
            self.open("port = Port.open({:spawn, \"cat\"}, [:binary])", Name::spawn("cat"), [Opt::Binary])
        {
            process::exit(&port, Reason::atom("boom"));
            self.iex("Process.exit(port, :boom)", true);
            self.flush(&[exit_msg(&port, ":boom")]);
        }
        self.note("with :eof the port outlives its program; writing to it then fails with :epipe");
        if let Some(port) = self.open(
            "port = Port.open({:spawn, \"true\"}, [:binary, :eof])",
            Name::spawn("true"),
            [Opt::Binary, Opt::Eof],
        ) {
            self.flush(&[from_port(&port, ":eof")]);
            let r = port.command("anyone?");
            self.check(r.is_ok(), format!("Port.command failed: {r:?}"));
            self.iex("Port.command(port, \"anyone?\")", r.is_ok());
            self.flush(&[exit_msg(&port, ":epipe")]);
        }
        self.note("an owner that does not trap exits dies with the port's reason");
        self.non_trapping_owner();
        let was = self.me.trap_exit(false);
        self.iex("Process.flag(:trap_exit, false)", was);
    }

    /// A spawned, non-trapping owner killed by its port's `:boom`, seen through a monitor.
    fn non_trapping_owner(&mut self) {
        let parent = self.me.pid();
        let owner = process::spawn(move |me| {
            match Port::open(Name::spawn("cat"), [Opt::Binary]) {
                Ok(port) => process::send(parent, port),
                Err(e) => process::send(parent, e.to_string()),
            }
            let _ = me.receive(); // Process.sleep(:infinity): until an exit signal kills us
        });
        println!("iex> parent = self()");
        println!("{parent:?}");
        self.iex(
            "pid = spawn(fn -> send(parent, Port.open({:spawn, \"cat\"}, [:binary])); Process.sleep(:infinity) end)",
            format_args!("{owner:?}"),
        );
        let got = self.me.receive_match(
            |m| matches!(m, Message::User(u) if u.downcast_ref::<Port>().is_some() || u.downcast_ref::<String>().is_some()),
            Some(WAIT),
        );
        let port = match got {
            Ok(Some(Message::User(u))) => match u.downcast::<Port>() {
                Ok(port) => port,
                Err(u) => {
                    self.mismatch(format!("the spawned owner could not open its port: {u:?}"));
                    return;
                }
            },
            _ => {
                self.mismatch("the spawned owner sent no port");
                return;
            }
        };
        self.iex("port = receive do p when is_port(p) -> p end", format_args!("{port:?}"));
        let r = process::monitor(owner);
        self.iex("ref = Process.monitor(pid)", format_args!("{r:?}"));
        process::exit(&port, Reason::atom("boom"));
        self.iex("Process.exit(port, :boom)", true);
        self.flush(&[format!("{{:DOWN, {r:?}, :process, {owner:?}, :boom}}")]);
        let alive = owner.is_alive();
        self.iex("Process.alive?(pid)", alive);
        self.check(!alive, format!("{owner:?} survived its port's :boom"));
    }

    /// The docs' "zombie processes" section.
    fn zombies(&mut self) {
        self.section("8. Zombie processes");
        self.note("The docs wrap a program that ignores stdin in a script and open the wrapper instead:");
        self.note("  Port.open({:spawn_executable, \"/path/to/wrapper\"}, [args: [\"/path/to/program\", \"a\", \"b\", \"c\"]])");
        self.note("beamport's wrapper, for programs started by anything (not run here):");
        self.note("  beamport run -- /path/to/program a b c");
        self.note("A port needs no wrapper: its program ends with the port, even when it ignores stdin.");
        self.note(
            "beamport's option {:grace, {200, 200}}: SIGTERM 200 ms after the port is gone, SIGKILL 200 ms later.",
        );
        let grace = Duration::from_millis(200);
        let Some(port) = self.open(
            "port = Port.open({:spawn, \"sleep 1000\"}, [:binary, grace: {200, 200}])",
            Name::spawn("sleep 1000"),
            [Opt::Binary, Opt::Grace(grace, grace)],
        ) else {
            return;
        };
        let Some(ItemValue::OsPid(Some(os_pid))) = port.info_item(Item::OsPid) else {
            self.mismatch("the sleep port has no os_pid");
            return;
        };
        self.iex("{:os_pid, os_pid} = Port.info(port, :os_pid)", format_args!("{{:os_pid, {os_pid}}}"));
        let proc_dir = format!("/proc/{os_pid}");
        let exists = Path::new(&proc_dir).exists();
        self.iex("File.exists?(\"/proc/#{os_pid}\")", exists);
        self.check(exists, format!("{proc_dir} does not exist while the port is open"));
        self.close(&port);
        self.note("OTP leaves `sleep 1000` running here; beamport ends it (waiting for that)");
        let deadline = Instant::now() + WAIT;
        while Path::new(&proc_dir).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let exists = Path::new(&proc_dir).exists();
        self.iex("File.exists?(\"/proc/#{os_pid}\")", exists);
        self.check(!exists, format!("`sleep 1000` (os pid {os_pid}) still runs {WAIT:?} after its port closed"));
        self.flush(&[]);
    }
}

/// The connect example's second process: keeps what it receives and reports it on request
/// (what `Process.info(pid, :messages)` shows in iex).
fn keeper(me: Process) {
    let mut held: Vec<String> = Vec::new();
    let not_a_call = |m: &Message| !matches!(m, Message::User(u) if u.downcast_ref::<KeeperCall>().is_some());
    loop {
        let Ok(msg) = me.receive() else { return };
        let Message::User(u) = msg else {
            held.push(format!("{msg:?}"));
            continue;
        };
        match u.downcast::<KeeperCall>() {
            Ok(KeeperCall::Report(to, n)) => {
                let deadline = Instant::now() + WAIT;
                while held.len() < n {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match me.receive_match(not_a_call, Some(left)) {
                        Ok(Some(m)) => held.push(format!("{m:?}")),
                        _ => break,
                    }
                }
                process::send(to, held.clone());
            }
            Ok(KeeperCall::Stop) => return,
            Err(other) => held.push(format!("{other:?}")),
        }
    }
}
