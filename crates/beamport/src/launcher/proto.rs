//! The launcher's wire protocol: length-prefixed little-endian records on one Unix stream
//! socket, with the child's socket (and the file to exec, when the host opened it) attached
//! as `SCM_RIGHTS` to each spawn request.

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys::child::{Exec, Layout};

/// Host → launcher.
#[derive(Debug)]
pub(crate) enum ToLauncher {
    /// Fork and exec a child. Its end of the port's socket (`io`) travels with the record,
    /// and after it the file to exec, if the host opened it (`spec.exec_fd`).
    Spawn { req: u64, spec: Exec, io: OwnedFd },
    /// Send `sig` to a child (or to its process group).
    Signal { pid: i32, sig: i32, group: bool },
    /// The port is gone: after `term_ms` send SIGTERM to the child's group, after `kill_ms`
    /// more SIGKILL (the kill ladder). `foreign`: the host forked the child itself (into the
    /// launcher's PID namespace), so the launcher has no record of it.
    Release { pid: i32, term_ms: u32, kill_ms: u32, foreign: bool },
}

/// Launcher → host.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FromLauncher {
    /// Answer to `Spawn`: the child's pid in the launcher's namespace and in the host's, or
    /// an errno.
    Spawned { req: u64, pid: i32, host_pid: i32, errno: i32 },
    /// A child ended; `status` is the raw wait status; `group_left` tells whether members of
    /// its process group outlive it (then the port's release ladders them).
    Exited { pid: i32, status: i32, group_left: bool },
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
    fn cstr(&mut self, s: &std::ffi::CStr) -> &mut Self {
        self.bytes(s.to_bytes())
    }
    fn cstrs(&mut self, l: &[CString]) -> &mut Self {
        self.u32(l.len() as u32);
        for s in l {
            self.cstr(s);
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
    /// A string without NUL bytes (the host checked; a record that has one is malformed).
    fn cstr(&mut self) -> Option<CString> {
        let n = self.u32()? as usize;
        CString::new(self.take(n)?).ok()
    }
    fn cstrs(&mut self) -> Option<Vec<CString>> {
        let n = self.u32()? as usize;
        // Each string takes at least its 4-byte length: a count beyond that is malformed,
        // not a reason to allocate.
        if n > self.0.len() / 4 {
            return None;
        }
        (0..n).map(|_| self.cstr()).collect()
    }
}

impl ToLauncher {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            ToLauncher::Spawn { req, spec: s, .. } => {
                let mut w = Writer::new(1);
                let flags = [
                    s.layout == Layout::Fd34,
                    s.reads,
                    s.writes,
                    s.stderr_to_stdout,
                    s.cwd.is_some(),
                    s.cd.is_some(),
                    s.exec_fd.is_some(),
                ];
                let bits = flags.iter().enumerate().fold(0, |b, (i, on)| b | (u32::from(*on) << i));
                w.u64(*req).u32(bits).cstr(&s.program).cstrs(&s.argv).cstrs(&s.envp);
                w.cstr(s.cwd.as_deref().unwrap_or_default()).cstr(s.cd.as_deref().unwrap_or_default());
                w.finish()
            }
            ToLauncher::Signal { pid, sig, group } => {
                let mut w = Writer::new(2);
                w.i32(*pid).i32(*sig).u32(*group as u32);
                w.finish()
            }
            ToLauncher::Release { pid, term_ms, kill_ms, foreign } => {
                let mut w = Writer::new(3);
                w.i32(*pid).u32(*term_ms).u32(*kill_ms).u32(*foreign as u32);
                w.finish()
            }
        }
    }

    /// The fds that travel with the record, in order.
    pub(crate) fn fds(&self) -> Vec<BorrowedFd<'_>> {
        match self {
            ToLauncher::Spawn { spec, io, .. } => {
                std::iter::once(io.as_fd()).chain(spec.exec_fd.as_ref().map(|f| f.as_fd())).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Decodes one record body (after the length prefix), taking the fds that came with it
    /// from the front of `fds`.
    ///
    /// # Errors
    ///
    /// [`Refused::Malformed`] for a record that does not decode; [`Refused::MissingFds`] for
    /// a spawn request whose fds did not come, which is answered with `EBADF`.
    pub(crate) fn decode(body: &[u8], fds: &mut VecDeque<OwnedFd>) -> Result<ToLauncher, Refused> {
        Self::decode_record(body, fds).unwrap_or(Err(Refused::Malformed))
    }

    fn decode_record(body: &[u8], fds: &mut VecDeque<OwnedFd>) -> Option<Result<ToLauncher, Refused>> {
        let (&tag, rest) = body.split_first()?;
        let mut r = Reader(rest);
        Some(Ok(match tag {
            1 => {
                let req = r.u64()?;
                let bits = r.u32()?;
                let on = |i: u32| bits & (1 << i) != 0;
                let (program, argv, envp) = (r.cstr()?, r.cstrs()?, r.cstrs()?);
                let (cwd, cd) = (r.cstr()?, r.cstr()?);
                let mut spec = Exec {
                    program,
                    argv,
                    envp,
                    cwd: on(4).then_some(cwd),
                    cd: on(5).then_some(cd),
                    layout: if on(0) { Layout::Fd34 } else { Layout::Stdio },
                    reads: on(1),
                    writes: on(2),
                    stderr_to_stdout: on(3),
                    // The forker's to set: the launcher's children die with it.
                    death_signal: None,
                    exec_fd: None,
                };
                let Some(io) = fds.pop_front() else { return Some(Err(Refused::MissingFds { req })) };
                if on(6) {
                    match fds.pop_front() {
                        Some(exe) => spec.exec_fd = Some(exe),
                        None => return Some(Err(Refused::MissingFds { req })),
                    }
                }
                ToLauncher::Spawn { req, spec, io }
            }
            2 => ToLauncher::Signal { pid: r.i32()?, sig: r.i32()?, group: r.u32()? != 0 },
            3 => ToLauncher::Release { pid: r.i32()?, term_ms: r.u32()?, kill_ms: r.u32()?, foreign: r.u32()? != 0 },
            _ => return None,
        }))
    }
}

/// Why the launcher did not take a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a record of this protocol.
    Malformed,
    /// Spawn request `req` came without its fds.
    MissingFds { req: u64 },
}

impl FromLauncher {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            FromLauncher::Spawned { req, pid, host_pid, errno } => {
                let mut w = Writer::new(1);
                w.u64(*req).i32(*pid).i32(*host_pid).i32(*errno);
                w.finish()
            }
            FromLauncher::Exited { pid, status, group_left } => {
                let mut w = Writer::new(2);
                w.i32(*pid).i32(*status).u32(*group_left as u32);
                w.finish()
            }
        }
    }

    pub(crate) fn decode(body: &[u8]) -> Option<FromLauncher> {
        let (&tag, rest) = body.split_first()?;
        let mut r = Reader(rest);
        Some(match tag {
            1 => FromLauncher::Spawned { req: r.u64()?, pid: r.i32()?, host_pid: r.i32()?, errno: r.i32()? },
            2 => FromLauncher::Exited { pid: r.i32()?, status: r.i32()?, group_left: r.u32()? != 0 },
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

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn null() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    fn spawn(req: u64, exe: bool) -> ToLauncher {
        let spec = Exec {
            program: c("/bin/sh"),
            argv: vec![c("sh"), c("-c"), c("exec cat")],
            envp: vec![c("A=1")],
            cwd: Some(c("/")),
            cd: None,
            layout: Layout::Fd34,
            reads: true,
            writes: false,
            stderr_to_stdout: true,
            death_signal: None,
            exec_fd: exe.then(null),
        };
        ToLauncher::Spawn { req, spec, io: null() }
    }

    /// What a request is on the wire, with how many fds go with it.
    fn wire(r: &ToLauncher) -> (Vec<u8>, usize) {
        (r.encode(), r.fds().len())
    }

    #[test]
    fn records_round_trip_across_splits() {
        let reqs = [
            spawn(7, false),
            spawn(8, true),
            ToLauncher::Signal { pid: 5, sig: 15, group: true },
            ToLauncher::Release { pid: 5, term_ms: 10, kill_ms: 20, foreign: false },
            ToLauncher::Release { pid: 6, term_ms: 0, kill_ms: 1, foreign: true },
        ];
        let want: Vec<(Vec<u8>, usize)> = reqs.iter().map(wire).collect();
        let bytes: Vec<u8> = reqs.iter().flat_map(|r| r.encode()).collect();
        for cut in 0..bytes.len() {
            let mut fds: VecDeque<OwnedFd> = (0..3).map(|_| null()).collect();
            let mut buf = bytes[..cut].to_vec();
            let mut got: Vec<ToLauncher> =
                split_records(&mut buf).iter().map(|b| ToLauncher::decode(b, &mut fds).unwrap()).collect();
            buf.extend_from_slice(&bytes[cut..]);
            got.extend(split_records(&mut buf).iter().map(|b| ToLauncher::decode(b, &mut fds).unwrap()));
            assert_eq!(got.iter().map(wire).collect::<Vec<_>>(), want);
            assert!(buf.is_empty() && fds.is_empty(), "every byte and fd taken");
        }
    }

    #[test]
    fn a_spawn_without_its_fds_is_refused_by_number() {
        let bytes = spawn(9, true).encode();
        let body = &split_records(&mut bytes.clone())[0];
        let mut one: VecDeque<OwnedFd> = [null()].into();
        assert_eq!(ToLauncher::decode(body, &mut one).unwrap_err(), Refused::MissingFds { req: 9 });
        assert_eq!(ToLauncher::decode(&[42], &mut VecDeque::new()).unwrap_err(), Refused::Malformed);
    }

    #[test]
    fn a_count_beyond_the_record_is_malformed() {
        let mut w = Writer::new(1);
        w.u64(1).u32(0).bytes(b"/bin/true").u32(u32::MAX);
        let mut buf = w.finish();
        let bodies = split_records(&mut buf);
        assert_eq!(ToLauncher::decode(&bodies[0], &mut [null()].into()).unwrap_err(), Refused::Malformed);
    }

    #[test]
    fn events_round_trip() {
        for e in [
            FromLauncher::Spawned { req: 1, pid: 2, host_pid: 9, errno: 0 },
            FromLauncher::Exited { pid: 3, status: 256, group_left: true },
        ] {
            let mut buf = e.encode();
            let bodies = split_records(&mut buf);
            assert_eq!(FromLauncher::decode(&bodies[0]), Some(e));
        }
    }
}
