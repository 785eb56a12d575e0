//! The other side of a port: for port programs written in Rust.
//!
//! A port program reads what its port sends and writes what the port's owner
//! receives, framed the same way on both sides. [`Channel`] does the framing
//! over stdin/stdout (OTP's default `use_stdio`) or over fds 3 and 4
//! (`nouse_stdio`), with plain blocking I/O.
//!
//! # Examples
//!
//! An echo program for a port opened with `{packet, 2}`:
//!
//! ```no_run
//! use beamport::framing::{Framing, PacketSize};
//! use beamport::program::Channel;
//!
//! let mut channel = Channel::stdio(Framing::Packet(PacketSize::Two))?;
//! while let Some(command) = channel.read()? {
//!     channel.write(&command)?;
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::framing::{header, Decoder, Frame, FrameError, Framing};
use crate::sys::{self, stdio};

/// The most one read asks for: OTP's read size.
const READ_SIZE: usize = 64 * 1024;

/// How long a read spins before it blocks, by default: as long as a beamport host's
/// ([`crate::DEFAULT_SPIN_WAIT`]).
const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// After this many spins in a row that saw nothing, a channel stops spinning for
/// [`SPIN_REST`] reads: its peer is slower than the spin.
const SPIN_MISSES: u32 = 4;
const SPIN_REST: u32 = 64;

/// The capacity a channel gives the pipes it talks on (OTP's ports use pipes), as beamport
/// gives its own ports' sockets.
const PIPE_SIZE: usize = 1 << 20;

/// A port program's connection to its port.
///
/// # Examples
///
/// ```no_run
/// use std::num::NonZeroUsize;
/// use beamport::framing::Framing;
/// use beamport::program::Channel;
///
/// // A port opened with [{line, 1024}, nouse_stdio].
/// let mut channel = Channel::nouse_stdio(Framing::Line(NonZeroUsize::new(1024).unwrap()))?;
/// channel.write(b"ready")?; // sent as "ready\n"
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Channel {
    reader: Input,
    writer: Box<dyn Write + Send>,
    decoder: Decoder,
    /// Bytes read but not decoded yet.
    buf: BytesMut,
    /// What each read lands in before it is appended to `buf`.
    scratch: Box<[u8]>,
    /// A frame being written.
    out: BytesMut,
    eof: bool,
    spin: Spin,
}

impl Channel {
    /// Talks on fds 0 and 1: OTP's default, `use_stdio`.
    ///
    /// Don't read stdin or write stdout elsewhere in the program as well: the
    /// frames would be torn. The channel reads and writes the fds themselves, one
    /// `write` a frame (not through `std`'s line-buffered `Stdout`), and gives pipes a
    /// capacity of 1 MiB, so that a frame of up to that size passes in one write.
    ///
    /// # Errors
    ///
    /// If fd 0 or 1 cannot be duplicated (`EMFILE`).
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::Framing;
    /// use beamport::program::Channel;
    ///
    /// let channel = Channel::stdio(Framing::Stream)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stdio(framing: Framing) -> io::Result<Self> {
        let (stdin, stdout) = (io::stdin(), io::stdout());
        let (input, output) = (stdin.as_fd(), stdout.as_fd());
        let file = File::from(sys::fd::dup(input)?);
        let mut channel = Self::new(io::empty(), File::from(sys::fd::dup(output)?), framing);
        let socket = sys::fd::is_socket(input);
        if !socket {
            sys::fd::grow_pipe(input, PIPE_SIZE);
        }
        sys::fd::grow_pipe(output, PIPE_SIZE);
        channel.reader = Input::Fd { file, socket };
        Ok(channel)
    }

    /// Talks on fds 3 and 4, for a port opened with `nouse_stdio`: reads
    /// commands from fd 3 and writes to fd 4. The channel owns both fds and
    /// closes them when dropped.
    ///
    /// # Errors
    ///
    /// If fd 3 is not open for reading or fd 4 not for writing (the program
    /// was not started by a `nouse_stdio` port), or if another `Channel` has
    /// taken them already.
    ///
    /// # Caveats
    ///
    /// Call it before the program opens any file: a program started without
    /// fds 3 and 4 may get those numbers for its own files.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use beamport::framing::{Framing, PacketSize};
    /// use beamport::program::Channel;
    ///
    /// let mut channel = Channel::nouse_stdio(Framing::Packet(PacketSize::Four))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn nouse_stdio(framing: Framing) -> io::Result<Self> {
        let (reader, writer) = stdio::nouse_stdio()?;
        sys::fd::grow_pipe(reader.as_fd(), PIPE_SIZE);
        sys::fd::grow_pipe(writer.as_fd(), PIPE_SIZE);
        let socket = sys::fd::is_socket(reader.as_fd());
        let mut channel = Self::new(io::empty(), writer, framing);
        channel.reader = Input::Fd { file: reader, socket };
        Ok(channel)
    }

    fn new(reader: impl Read + Send + 'static, writer: impl Write + Send + 'static, framing: Framing) -> Self {
        Self {
            reader: Input::Other(Box::new(reader)),
            writer: Box::new(writer),
            decoder: Decoder::new(framing),
            buf: BytesMut::new(),
            scratch: vec![0; READ_SIZE].into_boxed_slice(),
            out: BytesMut::new(),
            eof: false,
            spin: Spin::new(),
        }
    }

    /// How long a read may spin, polling its fd without sleeping, before it blocks: 50 µs by
    /// default, as a beamport host does (and as the Erlang VM's schedulers busy-wait). A
    /// command that comes within the spin costs no wake-up, which on VMs costs some 20 µs.
    /// A channel whose spins find nothing four times in a row stops spinning for 64 reads;
    /// on a machine with one CPU it never spins. `Duration::ZERO` turns it off.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::framing::{Framing, PacketSize};
    /// use beamport::program::Channel;
    ///
    /// // A program that shares its CPU with busier work does not spin.
    /// let mut channel = Channel::stdio(Framing::Packet(PacketSize::Four))?;
    /// channel.set_spin_wait(Duration::ZERO);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_spin_wait(&mut self, spin: Duration) {
        self.spin.limit = spin;
    }

    /// The next frame the port sent; `Ok(None)` once the port closed its end.
    ///
    /// `{packet, N}`: one packet, header stripped. `{line, L}`: one line
    /// without its line end, or an L-byte piece of a longer line (see
    /// [`read_frame`](Self::read_frame) to tell them apart). `stream`: what
    /// one read returned.
    ///
    /// # Errors
    ///
    /// Errors of the underlying read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use beamport::framing::Framing;
    /// use beamport::program::Channel;
    ///
    /// let mut channel = Channel::stdio(Framing::Stream)?;
    /// let mut total = 0;
    /// while let Some(chunk) = channel.read()? {
    ///     total += chunk.len();
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read(&mut self) -> io::Result<Option<Bytes>> {
        Ok(self.read_frame()?.map(Frame::into_bytes))
    }

    /// Like [`read`](Self::read), as a [`Frame`]: in `{line, L}` mode it
    /// tells a whole line (`eol: true`) from a piece of a longer or
    /// unterminated one.
    ///
    /// # Errors
    ///
    /// Errors of the underlying read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::num::NonZeroUsize;
    /// use beamport::framing::{Frame, Framing};
    /// use beamport::program::Channel;
    ///
    /// let mut channel = Channel::stdio(Framing::Line(NonZeroUsize::new(80).unwrap()))?;
    /// while let Some(Frame::Line { eol, data }) = channel.read_frame()? {
    ///     eprintln!("{} bytes, {}", data.len(), if eol { "whole line" } else { "piece" });
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if self.eof {
                return self.decoder.decode_eof(&mut self.buf).map_err(invalid_data);
            }
            if let Some(frame) = self.decoder.decode(&mut self.buf).map_err(invalid_data)? {
                return Ok(Some(frame));
            }
            self.fill()?;
        }
    }

    /// Writes one frame and flushes it: with its header in `{packet, N}`
    /// mode, followed by `\n` in `{line, L}` mode, as is in `stream` mode.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] wrapping a [`FrameError`] if `data` is
    /// too long for the packet header (nothing is written then), and errors
    /// of the underlying write.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::{Framing, PacketSize};
    /// use beamport::program::Channel;
    ///
    /// let mut channel = Channel::stdio(Framing::Packet(PacketSize::One))?;
    /// channel.write(b"hello")?; // "\x05hello"
    /// let err = channel.write(&[0; 256]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let line = matches!(self.decoder.framing(), Framing::Line(_));
        self.send(data, line)
    }

    /// Writes a frame as [`read_frame`](Self::read_frame) returned it, so
    /// that the port decodes the same frame: a [`Frame::Line`] gets its `\n`
    /// back only if it had one. A [`Frame::Data`] is written as by
    /// [`write`](Self::write).
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::num::NonZeroUsize;
    /// use beamport::framing::Framing;
    /// use beamport::program::Channel;
    ///
    /// // Echo, line by line: long lines and an unterminated last line too.
    /// let mut channel = Channel::stdio(Framing::Line(NonZeroUsize::new(4096).unwrap()))?;
    /// while let Some(frame) = channel.read_frame()? {
    ///     channel.write_frame(&frame)?;
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_frame(&mut self, frame: &Frame) -> io::Result<()> {
        match frame {
            Frame::Data(data) => self.write(data),
            Frame::Line { eol, data } => self.send(data, *eol),
        }
    }

    /// The next packet the port sent, decoded as a term (what the VM's
    /// `Port.command(port, :erlang.term_to_binary(term))` sends on a `{:packet, N}` port);
    /// `Ok(None)` once the port closed its end.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidData`] wrapping a [`DecodeError`](crate::term::DecodeError)
    /// if the packet is not a term (it is consumed: the next read goes on after it); errors
    /// of the underlying read.
    ///
    /// # Caveats
    ///
    /// Only `{packet, N}` framing keeps each term whole: in `stream` or `{line, L}` mode a
    /// frame may hold part of a term, or more than one.
    ///
    /// A term owns its parts: each atom, binary, list, tuple and map in it is an allocation
    /// of its own (a 1 KB map of 43 atom keys is about 100), so a program that decodes many
    /// terms a second spends much of its time in the allocator. glibc's malloc keeps only 7
    /// freed blocks of each size per thread; an allocator that keeps more, such as mimalloc,
    /// decodes and encodes that map in a quarter less time (`beamport-term-echo`, the
    /// `term_roundtrip` benchmark's port program, uses it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use beamport::framing::{Framing, PacketSize};
    /// use beamport::program::Channel;
    ///
    /// // An echo for Port.open({:spawn_executable, path}, [:binary, {:packet, 4}]).
    /// let mut channel = Channel::stdio(Framing::Packet(PacketSize::Four))?;
    /// while let Some(term) = channel.read_term()? {
    ///     channel.write_term(&term)?;
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "term")]
    pub fn read_term(&mut self) -> io::Result<Option<crate::term::Term>> {
        let Some(data) = self.read()? else { return Ok(None) };
        crate::term::decode(&data).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Writes a term as one frame, as the VM's `:erlang.term_to_binary/1` would make it; the
    /// port's owner gets it with `:erlang.binary_to_term/1`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`], and nothing is written, wrapping an
    /// [`EncodeError`](crate::term::EncodeError) if the term cannot be encoded, or a
    /// [`FrameError`] if it is too long for the packet header. Errors of the underlying
    /// write.
    ///
    /// # Caveats
    ///
    /// As [`read_term`](Self::read_term): use `{packet, N}` framing.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::{Framing, PacketSize};
    /// use beamport::program::Channel;
    /// use beamport::term;
    ///
    /// let mut channel = Channel::stdio(Framing::Packet(PacketSize::Two))?;
    /// channel.write_term(&term::parse("{ready, 1}").unwrap())?; // the owner gets {:data, <<...>>}
    /// let too_big = term::Term::from(term::Binary::from(vec![0; 70_000]));
    /// let err = channel.write_term(&too_big).unwrap_err(); // 2-byte headers hold 65535 at most
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "term")]
    pub fn write_term(&mut self, term: &crate::term::Term) -> io::Result<()> {
        let invalid = |e: Box<dyn std::error::Error + Send + Sync>| io::Error::new(io::ErrorKind::InvalidInput, e);
        let framing = self.decoder.framing();
        let line = matches!(framing, Framing::Line(_));
        // The term goes right after room for its header, which is filled in once its
        // length is known: one copy, into the frame.
        let room = header(framing, 0).map_err(|e| invalid(e.into()))?.as_bytes().len();
        self.out.clear();
        self.out.resize(room, 0);
        crate::term::encode_to(term, &mut self.out).map_err(|e| invalid(e.into()))?;
        let len = self.out.len() - room + usize::from(line);
        let header = header(framing, len).map_err(|e| invalid(e.into()))?;
        self.out[..room].copy_from_slice(header.as_bytes());
        if line {
            self.out.put_u8(b'\n');
        }
        self.writer.write_all(&self.out)?;
        self.writer.flush()
    }

    /// Writes `data`, then `\n` if `newline`, as one frame.
    fn send(&mut self, data: &[u8], newline: bool) -> io::Result<()> {
        let len = data.len() + usize::from(newline);
        let header = header(self.decoder.framing(), len).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.out.clear();
        self.out.reserve(header.as_bytes().len() + len);
        self.out.put_slice(header.as_bytes());
        self.out.put_slice(data);
        if newline {
            self.out.put_u8(b'\n');
        }
        self.writer.write_all(&self.out)?;
        self.writer.flush()
    }

    /// One read into `buf`; sets `eof` when it returns nothing.
    fn fill(&mut self) -> io::Result<()> {
        let spun = match &self.reader {
            // A socket is read without blocking while the spin lasts: what comes is read by
            // the try that sees it, with no `poll` first.
            Input::Fd { file, socket: true } => match self.spin.recv(file, &mut self.scratch)? {
                Some(n) => Some(n),
                None => {
                    sys::fd::wait_readable(file.as_fd())?;
                    None
                }
            },
            Input::Fd { file, socket: false } => {
                self.spin.poll(file);
                None
            }
            Input::Other(_) => None,
        };
        let n = match spun {
            Some(n) => n,
            None => loop {
                match self.reader.read(&mut self.scratch) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    result => break result?,
                }
            },
        };
        self.buf.extend_from_slice(&self.scratch[..n]);
        self.eof = n == 0;
        Ok(())
    }
}

/// Where a channel reads the port's commands.
enum Input {
    /// Fd 0 or 3: spun on (see [`Channel::set_spin_wait`]) before each read. A socket
    /// (beamport's ports) is then waited on with `poll`, which wakes only for input: a `read`
    /// blocked on a Unix socket also wakes each time the host takes a reply this program
    /// wrote, costing a needless wake-up per exchange. Pipes (OTP's ports) get plain blocking
    /// reads.
    Fd { file: File, socket: bool },
    /// Anything else: plain blocking reads.
    Other(Box<dyn Read + Send>),
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Fd { file, .. } => file.read(buf),
            Input::Other(r) => r.read(buf),
        }
    }
}

/// A read's spin before it blocks, and how lucky the last ones were.
struct Spin {
    limit: Duration,
    /// Spins in a row that saw nothing, then (past [`SPIN_MISSES`]) reads left without one.
    misses: u32,
    rest: u32,
}

impl Spin {
    fn new() -> Spin {
        static CPUS: OnceLock<usize> = OnceLock::new();
        let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Spin { limit: if cpus < 2 { Duration::ZERO } else { DEFAULT_SPIN }, misses: 0, rest: 0 }
    }

    /// Polls `fd` without sleeping for up to the limit; whether input came.
    fn poll(&mut self, fd: &File) -> bool {
        self.spin(|| Ok(sys::fd::readable_now(fd.as_fd()).then_some(()))).is_ok_and(|seen| seen.is_some())
    }

    /// Reads the socket `fd` into `buf` without blocking, again and again for up to the limit;
    /// what one read got (`Some(0)`: the end of input), or `None` if nothing came.
    fn recv(&mut self, fd: &File, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.spin(|| sys::fd::recv_now(fd.as_fd(), buf))
    }

    /// Tries `attempt` once, then, unless spinning is off or resting, again until it gives
    /// something or the limit passes.
    fn spin<T>(&mut self, mut attempt: impl FnMut() -> io::Result<Option<T>>) -> io::Result<Option<T>> {
        if let Some(t) = attempt()? {
            return Ok(Some(t));
        }
        if self.limit.is_zero() {
            return Ok(None);
        }
        if self.rest > 0 {
            self.rest -= 1;
            return Ok(None);
        }
        let start = Instant::now();
        let seen = loop {
            if let Some(t) = attempt()? {
                break Some(t);
            }
            if start.elapsed() >= self.limit {
                break None;
            }
            std::hint::spin_loop();
        };
        (self.misses, self.rest) = match (seen.is_some(), self.misses + 1) {
            (true, _) => (0, 0),
            (false, m) if m >= SPIN_MISSES => (0, SPIN_REST),
            (false, m) => (m, 0),
        };
        Ok(seen)
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("framing", &self.decoder.framing())
            .field("buffered", &self.buf.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

fn invalid_data(err: FrameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::num::NonZeroUsize;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::framing::PacketSize;

    /// A writer whose bytes the test can still see.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn echo(framing: Framing, input: &[u8]) -> Vec<u8> {
        let sink = Sink::default();
        let mut channel = Channel::new(Cursor::new(input.to_vec()), sink.clone(), framing);
        while let Some(frame) = channel.read_frame().unwrap() {
            channel.write_frame(&frame).unwrap();
        }
        assert_eq!(channel.read().unwrap(), None, "EOF stays EOF");
        let out = sink.0.lock().unwrap().clone();
        out
    }

    #[test]
    fn echo_keeps_frames() {
        let packets = b"\0\x03abc\0\0\0\x01d";
        assert_eq!(echo(Framing::Packet(PacketSize::Two), packets), packets);
        assert_eq!(echo(Framing::Stream, b"abc"), b"abc");
        let line = Framing::Line(NonZeroUsize::new(2).unwrap());
        assert_eq!(echo(line, b"abc\r\nd\n\nxyz"), b"abc\nd\n\nxyz");
    }

    #[test]
    fn read_drops_truncated_packet() {
        let framing = Framing::Packet(PacketSize::One);
        let mut channel = Channel::new(Cursor::new(b"\x01a\x05b".to_vec()), io::sink(), framing);
        assert_eq!(channel.read().unwrap().as_deref(), Some(&b"a"[..]));
        assert_eq!(channel.read().unwrap(), None);
    }

    #[test]
    fn write_frames() {
        let sink = Sink::default();
        let line = Framing::Line(NonZeroUsize::new(2).unwrap());
        let mut channel = Channel::new(io::empty(), sink.clone(), line);
        channel.write(b"abc").unwrap();
        channel.write(b"").unwrap();
        assert_eq!(&sink.0.lock().unwrap()[..], b"abc\n\n");

        let sink = Sink::default();
        let mut channel = Channel::new(io::empty(), sink.clone(), Framing::Packet(PacketSize::One));
        channel.write(b"ab").unwrap();
        let err = channel.write(&[0; 256]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.get_ref().unwrap().is::<FrameError>());
        let line = Frame::Line { eol: true, data: "x".into() };
        channel.write_frame(&line).unwrap();
        assert_eq!(&sink.0.lock().unwrap()[..], b"\x02ab\x02x\n");
    }
}
