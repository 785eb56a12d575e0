//! An in-memory driver for the port core's unit tests: no fd, no process. A test scripts
//! what the "program" sends and how much it accepts, then looks at what the core wrote and
//! how it ended the program.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use super::{Driver, Start};

/// The program's side, shared with the test.
#[derive(Debug, Default)]
pub(crate) struct Script {
    /// What the program sends next, chunk by chunk.
    pub input: VecDeque<Bytes>,
    /// The program has closed its output: reads return EOF once `input` is empty.
    pub eof: bool,
    /// How many more bytes the program accepts before writes would block.
    pub room: usize,
    /// Everything the core wrote.
    pub written: Vec<u8>,
    /// The core half-closed the program's input.
    pub input_closed: bool,
    /// The core stopped reading.
    pub output_stopped: bool,
    /// Signals sent, with whether to the group.
    pub signals: Vec<(i32, bool)>,
    /// The core released the program (the kill ladder would start now).
    pub released: bool,
    /// The program was started.
    pub started: bool,
    /// The program was reaped.
    pub exited: bool,
}

/// A driver over a [`Script`].
pub(crate) struct FakeDriver(pub Arc<Mutex<Script>>);

impl FakeDriver {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().expect("script")
    }
}

impl Driver for FakeDriver {
    fn write(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut s = self.script();
        if s.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(s.room);
            s.written.extend_from_slice(&b[..take]);
            s.room -= take;
            n += take;
            if take < b.len() {
                break;
            }
        }
        Ok(n)
    }

    fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut s = self.script();
        match s.input.pop_front() {
            Some(chunk) => {
                buf.extend_from_slice(&chunk);
                Ok(chunk.len())
            }
            None if s.eof => Ok(0),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn shutdown_write(&mut self) {
        self.script().input_closed = true;
    }

    fn shutdown_read(&mut self) {
        self.script().output_stopped = true;
    }

    fn io_fd(&self) -> Option<&Arc<OwnedFd>> {
        None
    }

    fn close_io(&mut self) {}

    fn start(&mut self, _id: u64) -> io::Result<Start> {
        self.script().started = true;
        Ok(Start::Running)
    }

    fn exit_fd(&self) -> Option<&Arc<OwnedFd>> {
        None
    }

    fn spawned(&mut self, _ns_pid: i32, _host_pid: i32) {}

    fn spawn_failed(&mut self) {}

    fn exited(&mut self, _group_left: bool) {
        self.script().exited = true;
    }

    fn os_pid(&self) -> Option<i32> {
        None
    }

    fn program_pid(&mut self) -> Option<i32> {
        None
    }

    fn signal(&mut self, sig: i32, group: bool) {
        self.script().signals.push((sig, group));
    }

    fn release(&mut self) {
        self.script().released = true;
    }

    fn expects_news(&self) -> bool {
        !self.script().exited
    }

    fn memory(&self) -> usize {
        0
    }
}
