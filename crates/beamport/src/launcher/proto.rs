//! The launcher's wire protocol: length-prefixed little-endian records on one Unix stream
//! socket, with the child's socket attached as `SCM_RIGHTS` to each spawn request.

use crate::sys::child::{ChildSpec, Exec, Layout};

/// Host → launcher.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Fork and exec a child; one fd (the child's end of the port socket) travels with it, two
    /// with [`flags::EXEC_FD`] (then the second is the file to exec).
    Spawn { req: u64, spec: SpawnSpec },
    /// Send `sig` to a child (or to its process group).
    Signal { pid: i32, sig: i32, group: bool },
    /// The port is gone: after `term_ms` send SIGTERM to the child's group, after `kill_ms`
    /// more SIGKILL (the kill ladder). `foreign`: the host forked the child itself (into the
    /// launcher's PID namespace), so the launcher has no record of it.
    Release { pid: i32, term_ms: u32, kill_ms: u32, foreign: bool },
}

/// What a spawn request says about the child to start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SpawnSpec {
    /// [`flags`] bits.
    pub flags: u32,
    pub program: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    /// The host's working directory, which the child starts in.
    pub cwd: Vec<u8>,
    /// `{:cd, dir}`, or empty.
    pub cd: Vec<u8>,
}

/// Who forks a child, which decides what it needs besides the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forker {
    /// The launcher: the child `chdir`s to the host's working directory and dies with the
    /// launcher (`PR_SET_PDEATHSIG`), also outside a PID namespace.
    Launcher,
    /// A host thread, into the launcher's namespace: the child starts in the host's working
    /// directory, and gets no death signal (it would fire when the forking *thread* ends).
    Host,
}

impl SpawnSpec {
    /// What `forker` needs, with `io` (the child's end of the port's socket) and the file to
    /// exec if the host opened it. Fails with `InvalidInput` on a NUL byte.
    pub(crate) fn into_child(
        self,
        io: std::os::fd::OwnedFd,
        exec_fd: Option<std::os::fd::OwnedFd>,
        forker: Forker,
    ) -> std::io::Result<ChildSpec> {
        let cwd = forker == Forker::Launcher;
        use crate::sys::child::cstring_from;
        let opt = |b: Vec<u8>| if b.is_empty() { Ok(None) } else { cstring_from(b).map(Some) };
        let f = self.flags;
        let exec = Exec {
            program: cstring_from(self.program)?,
            argv: self.argv.into_iter().map(cstring_from).collect::<Result<_, _>>()?,
            envp: self.envp.into_iter().map(cstring_from).collect::<Result<_, _>>()?,
            cwd: if cwd { opt(self.cwd)? } else { None },
            cd: opt(self.cd)?,
            layout: if f & flags::NOUSE_STDIO != 0 { Layout::Fd34 } else { Layout::Stdio },
            reads: f & flags::READS != 0,
            writes: f & flags::WRITES != 0,
            stderr_to_stdout: f & flags::STDERR_TO_STDOUT != 0,
            death_signal: cwd.then_some(crate::sys::signal::SIGKILL),
            exec_fd,
        };
        Ok(ChildSpec { exec, io })
    }

    /// The spec back from [`SpawnSpec::into_child`], with the child's socket and the file to
    /// exec, for the launcher.
    pub(crate) fn from_child(
        spec: ChildSpec,
        cwd: Vec<u8>,
    ) -> (SpawnSpec, std::os::fd::OwnedFd, Option<std::os::fd::OwnedFd>) {
        let ChildSpec { exec: c, io } = spec;
        let mut flags = 0;
        for (on, bit) in [
            (c.reads, flags::READS),
            (c.writes, flags::WRITES),
            (c.layout == Layout::Fd34, flags::NOUSE_STDIO),
            (c.stderr_to_stdout, flags::STDERR_TO_STDOUT),
            (c.exec_fd.is_some(), flags::EXEC_FD),
        ] {
            if on {
                flags |= bit;
            }
        }
        let spec = SpawnSpec {
            flags,
            program: c.program.into_bytes(),
            argv: c.argv.into_iter().map(|a| a.into_bytes()).collect(),
            envp: c.envp.into_iter().map(|a| a.into_bytes()).collect(),
            cwd,
            cd: c.cd.map(|d| d.into_bytes()).unwrap_or_default(),
        };
        (spec, io, c.exec_fd)
    }
}

/// Launcher → host.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Answer to `Spawn`: the child's pid in the launcher's namespace and in the host's, or
    /// an errno.
    Spawned { req: u64, pid: i32, host_pid: i32, errno: i32 },
    /// A child ended; `status` is the raw wait status; `group_left` tells whether members of
    /// its process group outlive it (then the port's release ladders them).
    Exited { pid: i32, status: i32, group_left: bool },
}

/// Spawn flags.
pub(crate) mod flags {
    pub const READS: u32 = 1;
    pub const WRITES: u32 = 2;
    pub const NOUSE_STDIO: u32 = 4;
    pub const STDERR_TO_STDOUT: u32 = 8;
    /// The request carries the file to exec, opened by the host, after the child's socket.
    pub const EXEC_FD: u32 = 16;
}

struct Writer(Vec<u8>);

impl Writer {
    fn new(tag: u8) -> Self {
        Writer(vec![0, 0, 0, 0, tag])
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    fn list(&mut self, l: &[Vec<u8>]) -> &mut Self {
        self.u32(l.len() as u32);
        for b in l {
            self.bytes(b);
        }
        self
    }
    fn finish(mut self) -> Vec<u8> {
        let len = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&len.to_le_bytes());
        self.0
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        (self.0.len() >= n).then(|| {
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            a
        })
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        Some(self.take(n)?.to_vec())
    }
    fn list(&mut self) -> Option<Vec<Vec<u8>>> {
        let n = self.u32()? as usize;
        (0..n).map(|_| self.bytes()).collect()
    }
}

impl Request {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Request::Spawn { req, spec: s } => {
                let mut w = Writer::new(1);
                w.u64(*req).u32(s.flags).bytes(&s.program).list(&s.argv).list(&s.envp).bytes(&s.cwd).bytes(&s.cd);
                w.finish()
            }
            Request::Signal { pid, sig, group } => {
                let mut w = Writer::new(2);
                w.i32(*pid).i32(*sig).u32(*group as u32);
                w.finish()
            }
            Request::Release { pid, term_ms, kill_ms, foreign } => {
                let mut w = Writer::new(3);
                w.i32(*pid).u32(*term_ms).u32(*kill_ms).u32(*foreign as u32);
                w.finish()
            }
        }
    }

    /// Decodes one record body (after the length prefix).
    pub(crate) fn decode(body: &[u8]) -> Option<Request> {
        let (&tag, rest) = body.split_first()?;
        let mut r = Reader(rest);
        Some(match tag {
            1 => Request::Spawn {
                req: r.u64()?,
                spec: SpawnSpec {
                    flags: r.u32()?,
                    program: r.bytes()?,
                    argv: r.list()?,
                    envp: r.list()?,
                    cwd: r.bytes()?,
                    cd: r.bytes()?,
                },
            },
            2 => Request::Signal { pid: r.i32()?, sig: r.i32()?, group: r.u32()? != 0 },
            3 => Request::Release { pid: r.i32()?, term_ms: r.u32()?, kill_ms: r.u32()?, foreign: r.u32()? != 0 },
            _ => return None,
        })
    }
}

impl Event {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Event::Spawned { req, pid, host_pid, errno } => {
                let mut w = Writer::new(1);
                w.u64(*req).i32(*pid).i32(*host_pid).i32(*errno);
                w.finish()
            }
            Event::Exited { pid, status, group_left } => {
                let mut w = Writer::new(2);
                w.i32(*pid).i32(*status).u32(*group_left as u32);
                w.finish()
            }
        }
    }

    pub(crate) fn decode(body: &[u8]) -> Option<Event> {
        let (&tag, rest) = body.split_first()?;
        let mut r = Reader(rest);
        Some(match tag {
            1 => Event::Spawned { req: r.u64()?, pid: r.i32()?, host_pid: r.i32()?, errno: r.i32()? },
            2 => Event::Exited { pid: r.i32()?, status: r.i32()?, group_left: r.u32()? != 0 },
            _ => return None,
        })
    }
}

/// Splits complete records off the front of `buf`; returns their bodies.
pub(crate) fn split_records(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while buf.len() - at >= 4 {
        let len = u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if buf.len() - at - 4 < len {
            break;
        }
        out.push(buf[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    buf.drain(..at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_across_splits() {
        let reqs = vec![
            Request::Spawn {
                req: 7,
                spec: SpawnSpec {
                    flags: flags::READS | flags::WRITES,
                    program: b"/bin/sh".to_vec(),
                    argv: vec![b"sh".to_vec(), b"-c".to_vec(), b"exec cat".to_vec()],
                    envp: vec![b"A=1".to_vec()],
                    cwd: b"/".to_vec(),
                    cd: vec![],
                },
            },
            Request::Signal { pid: 5, sig: 15, group: true },
            Request::Release { pid: 5, term_ms: 10, kill_ms: 20, foreign: false },
            Request::Release { pid: 6, term_ms: 0, kill_ms: 1, foreign: true },
        ];
        let wire: Vec<u8> = reqs.iter().flat_map(|r| r.encode()).collect();
        for cut in 0..wire.len() {
            let mut buf = wire[..cut].to_vec();
            let mut got: Vec<Request> = split_records(&mut buf).iter().map(|b| Request::decode(b).unwrap()).collect();
            buf.extend_from_slice(&wire[cut..]);
            got.extend(split_records(&mut buf).iter().map(|b| Request::decode(b).unwrap()));
            assert_eq!(got, reqs);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn events_round_trip() {
        for e in [
            Event::Spawned { req: 1, pid: 2, host_pid: 9, errno: 0 },
            Event::Exited { pid: 3, status: 256, group_left: true },
        ] {
            let mut buf = e.encode();
            let bodies = split_records(&mut buf);
            assert_eq!(Event::decode(&bodies[0]), Some(e));
        }
    }
}
