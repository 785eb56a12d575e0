//! The host's side: commands and messages as terms, and a receive that decodes data.
//!
//! Built on the public API of [`Port`] and [`Process`] only.

use std::time::Duration;

use bytes::Bytes;
use eetf::Term;

use super::error::Error;
use super::{decode, encode};
use crate::process::{Pid, Process};
use crate::{Message, Port, PortMsg, Request};

/// The node name of this host's pids and ports as terms: a VM without distribution's.
const NODE: &str = "nonode@nohost";

/// A pid as a term, `#PID<0.N.0>` as it prints, so that it can travel in a term (and name
/// the sender of a [`Port::send_term`] message).
///
/// # Examples
///
/// ```
/// use beamport::{process, term};
/// let me = process::current();
/// let t = term::Term::from(term::from_pid(me.pid()));
/// assert_eq!(term::iex(&t).to_string(), format!("{:?}", me.pid())); // #PID<0.N.0>
/// ```
pub fn from_pid(pid: Pid) -> eetf::Pid {
    let n = pid_number(pid);
    eetf::Pid::new(NODE, n as u32, (n >> 32) as u32, 0)
}

/// A port as a term, `#Port<0.N>` as it prints.
///
/// # Examples
///
/// ```
/// use beamport::{term, Name, Port};
/// let port = Port::open(Name::spawn("cat"), []).unwrap();
/// let t = term::Term::from(term::from_port(&port));
/// assert_eq!(term::iex(&t).to_string(), format!("{port:?}")); // #Port<0.N>
/// port.close().unwrap();
/// ```
pub fn from_port(port: &Port) -> eetf::Port {
    eetf::Port { node: eetf::Atom::from(NODE), id: port.id(), creation: 0 }
}

/// The N of `#PID<0.N.0>`.
fn pid_number(pid: Pid) -> u64 {
    pid.0
}

/// The live process of this host that a term's pid names.
fn to_pid(pid: &eetf::Pid) -> Option<Pid> {
    let local = from_pid(Pid(0));
    let ours = pid.node == local.node && pid.creation == local.creation;
    let p = Pid(u64::from(pid.id) | u64::from(pid.serial) << 32);
    (ours && from_pid(p) == *pid).then_some(p).filter(Pid::is_alive)
}

impl Port {
    /// Sends a term as one command: `Port.command(port, :erlang.term_to_binary(term))`.
    /// On a `{:packet, N}` port the program reads it as one packet.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the term cannot be encoded (nothing is sent), or [`Error::Port`]
    /// as [`Port::command`] gives.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{process, term, Name, Opt, Port};
    /// let me = process::current();
    /// // `cat` echoes each packet, header and all: a term comes back as it went.
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(4)]).unwrap();
    /// let t = term::parse("{hello, [1, 2, 3], <<\"bin\">>}").unwrap();
    /// port.command_term(&t).unwrap();
    /// assert_eq!(me.receive_term(&port).unwrap(), t);
    /// port.close().unwrap();
    /// ```
    pub fn command_term(&self, term: &Term) -> Result<(), Error> {
        self.command(encode(term)?)?;
        Ok(())
    }

    /// Sends the port a message written as a term, as `send(port, message)` does on the VM:
    /// `{pid, {:command, iodata}}`, `{pid, :close}` and `{pid, {:connect, new_pid}}` are
    /// [`Port::send`]'s requests, sent as `pid` (see [`from_pid`]). The VM's rules for
    /// anything else hold too: the port's owner gets the exit signal `:badsig` from the
    /// port, which stays open, and a `{pid, {:command, data}}` whose data is not iodata is
    /// also logged, through the `log` crate, as `Bad value on output port 'cat'`. A message
    /// to a closed port is dropped.
    ///
    /// # Caveats
    ///
    /// - A bitstring that is not a whole number of bytes is not iodata here (OTP 25 ignores
    ///   some of them: `{:command, <<1::3>>}` writes nothing there, `["a", <<1::3>>]` writes
    ///   `"a"`).
    /// - `{:connect, pid}` with a pid that names no live process of this host is bad (OTP
    ///   connects the port to it, and nothing can ever use or close the port then).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, term, Message, Name, Opt, Port, Reason};
    /// use beamport::term::{Term, Tuple, Atom, Binary};
    ///
    /// let me = process::current();
    /// me.trap_exit(true);
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    /// let pid = Term::from(term::from_pid(me.pid()));
    /// let tuple = |v: Vec<Term>| Term::from(Tuple::from(v));
    /// let command = tuple(vec![Term::from(Atom::from("command")), Term::from(Binary::from(&b"hi"[..]))]);
    /// port.send_term(&tuple(vec![pid.clone(), command])); // send(port, {self(), {:command, "hi"}})
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().unwrap();
    /// assert_eq!(msg.data().unwrap().as_str(), Some("hi"));
    ///
    /// port.send_term(&Term::from(Atom::from("hello"))); // send(port, :hello)
    /// let msg = me.receive_timeout(Duration::from_secs(5)).unwrap().unwrap();
    /// assert!(matches!(msg, Message::Exit(_, ref r) if *r == Reason::atom("badsig")));
    /// assert_eq!(msg.port(), Some(&port)); // {:EXIT, #Port<0.N>, :badsig}, and the port is still open
    /// port.close().unwrap();
    /// ```
    pub fn send_term(&self, message: &Term) {
        let Some(info) = self.info() else { return };
        let owner = from_pid(info.connected);
        let named = |t: &Term, name: &str| matches!(t, Term::Atom(a) if a.name == name);
        let mut request = None;
        if let Term::Tuple(t) = message {
            if let [Term::Pid(from), what] = &t.elements[..] {
                let ours = *from == owner;
                match what {
                    Term::Atom(a) if a.name == "close" && ours => request = Some(Request::Close),
                    Term::Tuple(c) if c.elements.len() == 2 && named(&c.elements[0], "command") => {
                        match iodata(&c.elements[1]) {
                            Some(bytes) if ours => request = Some(Request::Command(bytes)),
                            Some(_) => {}
                            None => log::error!("Bad value on output port '{}'", info.name),
                        }
                    }
                    Term::Tuple(c) if c.elements.len() == 2 && named(&c.elements[0], "connect") && ours => {
                        if let Term::Pid(new) = &c.elements[1] {
                            request = to_pid(new).map(Request::Connect);
                        }
                    }
                    _ => {}
                }
            }
        }
        match request {
            Some(r) => self.send(info.connected, r),
            None => self.badsig(),
        }
    }
}

/// The bytes of an iolist or a binary (the data of a `{:command, data}`), or `None`.
fn iodata(t: &Term) -> Option<Bytes> {
    let mut out = Vec::new();
    // (term, whether it is a list's element, where a byte may stand).
    let mut stack = vec![(t, false)];
    while let Some((t, element)) = stack.pop() {
        match t {
            Term::Binary(b) => out.extend_from_slice(&b.bytes),
            Term::ByteList(b) => out.extend_from_slice(&b.bytes),
            Term::FixInteger(i) if element => out.push(u8::try_from(i.value).ok()?),
            Term::List(l) => stack.extend(l.elements.iter().rev().map(|e| (e, true))),
            Term::ImproperList(l) => {
                stack.push((&l.last, false));
                stack.extend(l.elements.iter().rev().map(|e| (e, true)));
            }
            _ => return None,
        }
    }
    Some(Bytes::from(out))
}

impl Process {
    /// Waits for the next data from `port` and decodes it as a term: the VM's
    /// `receive do {^port, {:data, b}} -> :erlang.binary_to_term(b) end`, for a
    /// `{:packet, N}` port. Other messages stay in the mailbox, except the port's own
    /// (`:closed`, `{:exit_status, n}`, `:eof`, `{:EXIT, port, r}`, `{:DOWN, …, port, r}`),
    /// which end the wait with [`Error::NotData`], so that a dead port does not leave the
    /// caller waiting for ever.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] with the packet if it is not a term, [`Error::NotData`] with the
    /// port's message if it is not data, [`Error::Exited`] if this process is dead.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{process, term, Name, Opt, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(2), Opt::ExitStatus]).unwrap();
    /// port.command_term(&term::parse("[1, 2.5, <<\"x\">>]").unwrap()).unwrap();
    /// let t = me.receive_term(&port).unwrap();
    /// assert_eq!(term::iex(&t).to_string(), r#"[1, 2.5, "x"]"#);
    /// port.close_input().unwrap();
    /// let end = me.receive_term(&port).unwrap_err(); // cat exits at EOF
    /// assert_eq!(end.to_string(), format!("the port sent {{{port:?}, {{:exit_status, 0}}}}, not data"));
    /// ```
    pub fn receive_term(&self, port: &Port) -> Result<Term, Error> {
        let msg = self.receive_match(|m| m.port() == Some(port), None)?;
        term_of(msg.expect("no timeout"))
    }

    /// Like [`receive_term`](Self::receive_term), waiting at most `timeout`: `Ok(None)` if
    /// nothing came from the port by then.
    ///
    /// # Errors
    ///
    /// As [`receive_term`](Self::receive_term).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, term, Name, Opt, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("cat"), [Opt::Binary, Opt::Packet(4)]).unwrap();
    /// assert!(me.receive_term_timeout(&port, Duration::from_millis(10)).unwrap().is_none());
    /// port.command_term(&term::parse("ok").unwrap()).unwrap();
    /// let t = me.receive_term_timeout(&port, Duration::from_secs(5)).unwrap();
    /// assert_eq!(t, Some(term::parse("ok").unwrap()));
    /// port.close().unwrap();
    /// ```
    pub fn receive_term_timeout(&self, port: &Port, timeout: Duration) -> Result<Option<Term>, Error> {
        match self.receive_match(|m| m.port() == Some(port), Some(timeout))? {
            Some(msg) => term_of(msg).map(Some),
            None => Ok(None),
        }
    }
}

fn term_of(msg: Message) -> Result<Term, Error> {
    match msg {
        Message::Port(_, PortMsg::Data(d)) => {
            let data = d.into_bytes();
            decode(&data).map_err(|error| Error::Decode { error, data })
        }
        other => Err(Error::NotData(other)),
    }
}
