//! A port's state, in named parts, and the effects decided under its lock and carried out
//! after it is released.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Condvar, Mutex};
use std::task::Waker;

use bytes::{Bytes, BytesMut};

use super::options::Settings;
use crate::driver::Drivers;
use crate::framing::Decoder;
use crate::message::{Pid, Ref};

/// Where a port is in its life. [`super::Port`]'s `begin_close` and `finish` are the only
/// functions that move it past `Open`, whatever the cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Being set up by `Port::open`.
    Opening,
    Open,
    /// Exit signals and `DOWN`s sent; queued output still flushing.
    Closing,
    Dead,
}

/// Who owns the port and who is linked to it or monitors it: OTP's core.
pub(super) struct Life {
    pub owner: Pid,
    pub links: Vec<Pid>,
    pub monitors: Vec<(Ref, Pid)>,
    /// `{port, :closed}` goes to this pid once the output is flushed (a `{pid, :close}`).
    pub reply_closed: Option<Pid>,
}

/// Output to what is behind the port, and its busy limits.
pub(super) struct Output {
    pub queue: VecDeque<Bytes>,
    /// Bytes in `queue`.
    pub queued: usize,
    /// Above the high busy limit, until below the low one: senders wait.
    pub busy: bool,
    /// Async senders waiting for the port not to be busy.
    pub busy_wakers: Vec<Waker>,
    pub half: Half,
    /// Bytes accepted (`:output` in `Port.info/1`).
    pub sent: u64,
}

/// The half-close of the port's output ([`super::Port::close_input`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Half {
    Open,
    /// Asked for: the end of input goes once the queue is written.
    Draining,
    Closed,
}

/// Input from what is behind the port.
pub(super) struct Input {
    pub decoder: Decoder,
    /// Read but not yet framed.
    pub rbuf: BytesMut,
    pub reading: Reading,
    /// Bytes read (`:input` in `Port.info/1`).
    pub received: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reading {
    Open,
    /// The end of input was read; the last messages wait for the exit status, if asked for.
    Eof,
    /// The last messages went out.
    Done,
}

/// How the driver's fds are watched: by the reactor, or by the owner's thread while it
/// waits for a reply (see `lending.rs`).
pub(super) struct Watch {
    pub mode: WatchMode,
    /// The reactor watches the driver's exit fd (it does unless the port is lent).
    pub exit_watched: bool,
    /// The owner commanded since it last polled the port: a reply is likely soon, and worth
    /// spinning for before sleeping (a program just started, or one that talks unasked, is
    /// not).
    pub replying: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WatchMode {
    /// Nobody watches the io fd (being opened, dead, or nothing left to watch for).
    Off,
    /// The reactor watches it, for writability too while output is queued.
    Reactor { write: bool },
    /// Lent to the owner's thread, out of the reactor, which takes it back if the owner does
    /// not poll it in time; `poller` polls it right now.
    Lent { poller: Option<Pid> },
}

/// What the port knows of the thing behind its driver.
pub(super) struct Behind {
    /// Started, or failed to: a start that was pending has been answered.
    pub started: bool,
    /// Its raw wait status, once reaped.
    pub exit: Option<i32>,
}

pub(super) struct State {
    pub phase: Phase,
    pub life: Life,
    pub out: Output,
    pub inp: Input,
    pub watch: Watch,
    pub behind: Behind,
    pub driver: Drivers,
    /// Threads waiting on the port's condvar.
    pub cv_waiters: u32,
}

pub(crate) struct Inner {
    pub(super) id: u64,
    pub(super) name: Box<str>,
    pub(super) settings: Settings,
    pub(super) state: Mutex<State>,
    pub(super) cv: Condvar,
    /// Bytes of this port's data delivered and not yet taken by the owner.
    pub(super) unread: AtomicUsize,
    /// Reading stopped at a full read window; the owner's taking messages restarts it.
    /// Outside the state lock so that taking a message never needs the port's lock.
    pub(super) read_paused: AtomicBool,
    /// The port has left `Open`: read without its lock by the owner's process, which drops
    /// such ports from its list of owned ones.
    pub(super) closing: AtomicBool,
}

impl State {
    /// A port's state before its driver starts: owned by and linked to `owner`.
    pub(super) fn new(owner: Pid, settings: &Settings, driver: Drivers) -> State {
        State {
            phase: Phase::Opening,
            life: Life { owner, links: vec![owner], monitors: Vec::new(), reply_closed: None },
            out: Output {
                queue: VecDeque::new(),
                queued: 0,
                busy: false,
                busy_wakers: Vec::new(),
                half: Half::Open,
                sent: 0,
            },
            inp: Input {
                decoder: Decoder::new(settings.framing).with_packet_size(settings.packet_size),
                rbuf: BytesMut::new(),
                reading: Reading::Open,
                received: 0,
            },
            watch: Watch { mode: WatchMode::Off, exit_watched: false, replying: false },
            behind: Behind { started: false, exit: None },
            driver,
            cv_waiters: 0,
        }
    }
}
