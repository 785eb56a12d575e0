//! How a port frames the bytes it exchanges with its program.
//!
//! These are pure codecs in the style of `tokio-util`'s: no I/O, no port
//! state. A [`Decoder`] splits the child's output, as it arrives in a
//! [`BytesMut`], into [`Frame`]s; [`header`] and [`encode`] build what is
//! written to the child. The three modes are OTP's `stream`, `{packet, N}` and
//! `{line, L}` options, with OTP's exact semantics.
//!
//! # `stream` ([`Framing::Stream`])
//!
//! No framing: every read becomes one frame, as it came.
//!
//! ```text
//!   INPUT (two reads)                  DECODED
//! +-------+  +----------+          +-------+  +----------+
//! | "abc" |  | "de\nfg" |   -->    | "abc" |  | "de\nfg" |
//! +-------+  +----------+          +-------+  +----------+
//! ```
//!
//! # `{packet, N}` ([`Framing::Packet`])
//!
//! Each packet carries an N-byte big-endian length header (N = 1, 2 or 4).
//! One frame per packet, header stripped, reassembled across reads. A packet
//! still incomplete at EOF is dropped silently, as OTP does
//! ([`Decoder::truncated`] counts its bytes). A decoder given a packet size
//! ([`Decoder::with_packet_size`], gen_tcp's `{packet_size, N}`) refuses a
//! header that announces more, as soon as the header is read
//! ([`FrameError::OverPacketSize`]); OTP's spawn ports have no such bound.
//!
//! ```text
//!   INPUT ({packet, 2}, 8 bytes)                  DECODED
//! +--------+-------+--------+-----+------+      +-------+  +-----+
//! | 0x0003 | "abc" | 0x0001 | "d" | 0x00 | -->  | "abc" |  | "d" |   (0x00 dropped at EOF)
//! +--------+-------+--------+-----+------+      +-------+  +-----+
//! ```
//!
//! # `{line, L}` ([`Framing::Line`])
//!
//! Lines end at LF; a CR right before the LF goes too, a CR anywhere else is
//! data. A line of at most L bytes (without its CR LF) becomes one `eol`
//! frame; a longer one comes as `noeol` chunks of L bytes, then `eol` with
//! the rest. An unterminated tail is delivered at EOF as `noeol`. So a CR is
//! not counted against L when it is part of the line end, and is counted like
//! any other byte when it is not: this is what OTP's line buffer does.
//!
//! ```text
//!   INPUT ({line, 4})             DECODED
//! +------------+              +---------------+
//! | "ab\r\n"   |     -->      | eol "ab"      |
//! +------------+              +---------------+
//! | "cd\rde\n" |     -->      | noeol "cd\rd" |
//! |            |              | eol "e"       |
//! +------------+              +---------------+
//! | "xy"  EOF  |     -->      | noeol "xy"    |
//! +------------+              +---------------+
//! ```
//!
//! # Examples
//!
//! ```
//! use beamport::framing::{Decoder, Frame, Framing, PacketSize};
//! use bytes::BytesMut;
//!
//! let mut decoder = Decoder::new(Framing::Packet(PacketSize::Two));
//! let mut buf = BytesMut::from(&b"\0\x03abc\0\x01d\0"[..]);
//! assert_eq!(decoder.decode(&mut buf)?, Some(Frame::Data("abc".into())));
//! assert_eq!(decoder.decode(&mut buf)?, Some(Frame::Data("d".into())));
//! assert_eq!(decoder.decode(&mut buf)?, None);
//! assert_eq!(decoder.decode_eof(&mut buf)?, None);
//! assert_eq!(decoder.truncated(), 1);
//! # Ok::<(), beamport::framing::FrameError>(())
//! ```

use std::num::NonZeroUsize;

use bytes::{Buf, BufMut, Bytes, BytesMut};

#[cfg(test)]
mod tests;

/// The most a [`Decoder`] reserves ahead for a packet body. A length header
/// promising 4 GiB gets this much room, and more only as bytes arrive.
const MAX_RESERVE: usize = 64 * 1024;

/// How a port frames the bytes it exchanges with its program.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use beamport::framing::{Framing, PacketSize};
///
/// assert_eq!(Framing::default(), Framing::Stream);
/// let packet = Framing::Packet(PacketSize::Four); // {packet, 4}
/// let line = Framing::Line(NonZeroUsize::new(512).unwrap()); // {line, 512}
/// assert_ne!(packet, line);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Framing {
    /// `stream`: no framing, bytes as they come.
    #[default]
    Stream,
    /// `{packet, N}`: an N-byte big-endian length header before each packet,
    /// both ways.
    Packet(PacketSize),
    /// `{line, L}`: the child's output is split into lines of at most L bytes.
    /// What is sent to the child is not changed.
    Line(NonZeroUsize),
}

/// The size of a `{packet, N}` length header.
///
/// # Examples
///
/// ```
/// use beamport::framing::PacketSize;
///
/// assert_eq!(PacketSize::from_u8(2), Some(PacketSize::Two));
/// assert_eq!(PacketSize::try_from(3).unwrap_err().to_string(),
///            "packet size must be 1, 2 or 4, not 3");
/// assert_eq!(PacketSize::Two.max_len(), 65_535);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketSize {
    /// `{packet, 1}`: payloads up to 255 bytes.
    One = 1,
    /// `{packet, 2}`: payloads up to 65,535 bytes.
    Two = 2,
    /// `{packet, 4}`: payloads up to `u32::MAX` bytes.
    Four = 4,
}

impl PacketSize {
    /// The size for an N of 1, 2 or 4; `None` for anything else (OTP's
    /// `badarg`).
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::PacketSize;
    ///
    /// assert_eq!(PacketSize::from_u8(4), Some(PacketSize::Four));
    /// assert_eq!(PacketSize::from_u8(0), None);
    /// ```
    pub const fn from_u8(n: u8) -> Option<Self> {
        match n {
            1 => Some(Self::One),
            2 => Some(Self::Two),
            4 => Some(Self::Four),
            _ => None,
        }
    }

    /// The header's length in bytes: N.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::PacketSize;
    ///
    /// assert_eq!(PacketSize::Four.header_len(), 4);
    /// ```
    pub const fn header_len(self) -> usize {
        self as usize
    }

    /// The largest payload such a header can announce: 255, 65,535 or
    /// `u32::MAX`.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::PacketSize;
    ///
    /// assert_eq!(PacketSize::One.max_len(), 255);
    /// assert_eq!(PacketSize::Four.max_len(), u64::from(u32::MAX));
    /// ```
    pub const fn max_len(self) -> u64 {
        match self {
            Self::One => u8::MAX as u64,
            Self::Two => u16::MAX as u64,
            Self::Four => u32::MAX as u64,
        }
    }
}

/// The error for a packet size other than 1, 2 or 4.
///
/// # Examples
///
/// ```
/// use beamport::framing::{InvalidPacketSize, PacketSize};
///
/// assert_eq!(PacketSize::try_from(0), Err(InvalidPacketSize(0)));
/// ```
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[error("packet size must be 1, 2 or 4, not {0}")]
pub struct InvalidPacketSize(pub u8);

impl TryFrom<u8> for PacketSize {
    type Error = InvalidPacketSize;

    fn try_from(n: u8) -> Result<Self, Self::Error> {
        Self::from_u8(n).ok_or(InvalidPacketSize(n))
    }
}

/// One decoded unit of the child's output.
///
/// # Examples
///
/// ```
/// use beamport::framing::Frame;
///
/// let line = Frame::Line { eol: true, data: "ab".into() };
/// assert_eq!(line.data(), "ab");
/// assert_eq!(Frame::Data("xyz".into()).into_bytes(), "xyz");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Frame {
    /// A chunk (`stream`) or a packet without its header (`{packet, N}`).
    Data(Bytes),
    /// `{line, L}`: OTP's `{eol, Line}` (`eol: true`) or `{noeol, Chunk}`.
    Line {
        /// The line ended here; its LF (and a CR before it) are stripped.
        eol: bool,
        /// The line's bytes.
        data: Bytes,
    },
}

impl Frame {
    /// The frame's bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::Frame;
    ///
    /// assert_eq!(Frame::Line { eol: false, data: "ab".into() }.data().len(), 2);
    /// ```
    pub fn data(&self) -> &Bytes {
        match self {
            Self::Data(data) | Self::Line { data, .. } => data,
        }
    }

    /// The frame's bytes, by value.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::Frame;
    ///
    /// assert_eq!(Frame::Line { eol: true, data: "ab".into() }.into_bytes(), "ab");
    /// ```
    pub fn into_bytes(self) -> Bytes {
        match self {
            Self::Data(data) | Self::Line { data, .. } => data,
        }
    }
}

/// Errors of the codecs.
///
/// # Examples
///
/// ```
/// use beamport::framing::{header, FrameError, Framing, PacketSize};
///
/// let err = header(Framing::Packet(PacketSize::One), 256).unwrap_err();
/// assert_eq!(err, FrameError::PacketTooLarge { len: 256, header: 1, max: 255 });
/// assert_eq!(err.to_string(),
///            "packet of 256 bytes is too large for a 1-byte header (max 255)");
/// ```
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum FrameError {
    /// A length header announcing more than the decoder's packet size
    /// ([`Decoder::with_packet_size`]); gen_tcp's `emsgsize`. Nothing of the
    /// packet is consumed.
    #[error("a packet header announces {len} bytes, more than the packet size of {max} (emsgsize)")]
    OverPacketSize {
        /// The length the header announces.
        len: u64,
        /// The packet size.
        max: usize,
    },
    /// A payload longer than the packet header can announce. OTP lets the
    /// port exit with `einval`.
    #[error("packet of {len} bytes is too large for a {header}-byte header (max {max})")]
    PacketTooLarge {
        /// The payload's length.
        len: usize,
        /// N of `{packet, N}`.
        header: u8,
        /// The largest payload N bytes can announce.
        max: u64,
    },
}

/// Where a packet decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DecodeState {
    /// Waiting for a length header.
    Head,
    /// Header read; the body has this many bytes.
    Data(usize),
}

/// Incremental decoder for the child's output.
///
/// Feed it the bytes read so far; call [`decode`](Self::decode) until it
/// returns `Ok(None)`, read more, and at EOF call
/// [`decode_eof`](Self::decode_eof) until it returns `Ok(None)`. Frames are
/// split off the buffer without copying. The decoder holds no bytes itself:
/// an incomplete frame waits in the buffer. How much waits there is bounded
/// by the frame (`{packet, N}`: at most the packet size given to
/// [`with_packet_size`](Self::with_packet_size) plus the header) or by L + 1
/// bytes (`{line, L}`), plus the bytes of the last read.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use beamport::framing::{Decoder, Frame, Framing};
/// use bytes::BytesMut;
///
/// let mut decoder = Decoder::new(Framing::Line(NonZeroUsize::new(80).unwrap()));
/// let mut buf = BytesMut::new();
/// buf.extend_from_slice(b"abc"); // first read
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// buf.extend_from_slice(b"def\nx"); // second read
/// assert_eq!(decoder.decode(&mut buf)?, Some(Frame::Line { eol: true, data: "abcdef".into() }));
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// // EOF
/// assert_eq!(decoder.decode_eof(&mut buf)?, Some(Frame::Line { eol: false, data: "x".into() }));
/// assert_eq!(decoder.decode_eof(&mut buf)?, None);
/// # Ok::<(), beamport::framing::FrameError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    framing: Framing,
    state: DecodeState,
    /// `{line, L}`: the buffer's first `next_index` bytes hold no LF.
    next_index: usize,
    wanted: Option<usize>,
    truncated: usize,
    /// The largest packet body accepted; `usize::MAX` for none.
    packet_size: usize,
}

impl Decoder {
    /// A decoder for `framing`.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::{Decoder, Framing};
    ///
    /// let decoder = Decoder::new(Framing::Stream);
    /// assert_eq!(decoder.framing(), Framing::Stream);
    /// ```
    pub fn new(framing: Framing) -> Self {
        Self { framing, state: DecodeState::Head, next_index: 0, wanted: None, truncated: 0, packet_size: usize::MAX }
    }

    /// The same decoder, refusing in `{packet, N}` mode any packet whose
    /// header announces more than `max` bytes (gen_tcp's `{packet_size, N}`);
    /// `None`, the default, accepts anything the header can announce, as OTP's
    /// spawn ports do. The check is made on the header alone: a body over the
    /// limit is never buffered. So an incomplete packet holds at most `max`
    /// bytes plus its header.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::{Decoder, Frame, FrameError, Framing, PacketSize};
    /// use bytes::BytesMut;
    ///
    /// let mut decoder = Decoder::new(Framing::Packet(PacketSize::Four)).with_packet_size(Some(3));
    /// let mut buf = BytesMut::from(&b"\0\0\0\x03abc\x7f\xff\xff\xff"[..]);
    /// assert_eq!(decoder.decode(&mut buf)?, Some(Frame::Data("abc".into())));
    /// let err = decoder.decode(&mut buf).unwrap_err();
    /// assert_eq!(err, FrameError::OverPacketSize { len: 0x7fff_ffff, max: 3 });
    /// assert_eq!(buf.len(), 4); // the header is left where it was
    /// # Ok::<(), FrameError>(())
    /// ```
    pub fn with_packet_size(mut self, max: Option<usize>) -> Self {
        self.packet_size = max.unwrap_or(usize::MAX);
        self
    }

    /// The framing this decoder was made for.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::{Decoder, Framing, PacketSize};
    ///
    /// let framing = Framing::Packet(PacketSize::One);
    /// assert_eq!(Decoder::new(framing).framing(), framing);
    /// ```
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The next complete frame at the front of `src`, split off it.
    ///
    /// `Ok(None)` means more bytes are needed. `stream` returns all of `src`
    /// as one [`Frame::Data`] if it is not empty.
    ///
    /// # Errors
    ///
    /// [`FrameError::OverPacketSize`] for a `{packet, N}` header over the
    /// decoder's packet size ([`with_packet_size`](Self::with_packet_size)),
    /// again at every call: the header stays in `src`. Nothing else can fail
    /// on input.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::{Decoder, Frame, Framing, PacketSize};
    /// use bytes::BytesMut;
    ///
    /// let mut decoder = Decoder::new(Framing::Packet(PacketSize::Four));
    /// let mut buf = BytesMut::from(&b"\0\0\0\x02a"[..]);
    /// assert_eq!(decoder.decode(&mut buf)?, None);
    /// buf.extend_from_slice(b"b");
    /// assert_eq!(decoder.decode(&mut buf)?, Some(Frame::Data("ab".into())));
    /// # Ok::<(), beamport::framing::FrameError>(())
    /// ```
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        self.wanted = None;
        Ok(match self.framing {
            Framing::Stream => (!src.is_empty()).then(|| Frame::Data(src.split().freeze())),
            Framing::Packet(size) => self.decode_packet(size, src)?,
            Framing::Line(max) => self.decode_line(max.get(), src),
        })
    }

    /// Like [`decode`](Self::decode), once the stream has hit EOF: call it
    /// until it returns `Ok(None)`.
    ///
    /// `{line, L}` delivers the unterminated rest as `noeol` chunks.
    /// `{packet, N}` drops an incomplete packet silently, as OTP does, and
    /// adds its bytes to [`truncated`](Self::truncated).
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use beamport::framing::{Decoder, Frame, Framing};
    /// use bytes::BytesMut;
    ///
    /// let mut decoder = Decoder::new(Framing::Line(NonZeroUsize::new(2).unwrap()));
    /// let mut buf = BytesMut::from("abc");
    /// let noeol = |s: &'static str| Some(Frame::Line { eol: false, data: s.into() });
    /// assert_eq!(decoder.decode(&mut buf)?, noeol("ab"));
    /// assert_eq!(decoder.decode(&mut buf)?, None);
    /// assert_eq!(decoder.decode_eof(&mut buf)?, noeol("c"));
    /// assert_eq!(decoder.decode_eof(&mut buf)?, None);
    /// # Ok::<(), beamport::framing::FrameError>(())
    /// ```
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        self.wanted = None;
        match self.framing {
            Framing::Stream => {}
            Framing::Packet(size) => {
                let header = match self.state {
                    DecodeState::Head => 0,
                    DecodeState::Data(_) => size.header_len(),
                };
                self.truncated += header + src.len();
                self.state = DecodeState::Head;
                src.clear();
            }
            Framing::Line(max) if !src.is_empty() => {
                // `decode` left at most L bytes and a CR that might have
                // started a CR LF.
                self.next_index = 0;
                let len = src.len().min(max.get());
                return Ok(Some(Frame::Line { eol: false, data: src.split_to(len).freeze() }));
            }
            Framing::Line(_) => {}
        }
        Ok(None)
    }

    /// How many more bytes the decoder needs before it can make progress,
    /// when known: after a [`decode`](Self::decode) that returned `Ok(None)`
    /// in `{packet, N}` mode, the rest of the header or of the body. `None`
    /// otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::{Decoder, Framing, PacketSize};
    /// use bytes::BytesMut;
    ///
    /// let mut decoder = Decoder::new(Framing::Packet(PacketSize::Two));
    /// let mut buf = BytesMut::from(&b"\x01"[..]);
    /// decoder.decode(&mut buf)?;
    /// assert_eq!(decoder.wanted(), Some(1)); // the header's second byte
    /// buf.extend_from_slice(b"\x00abc");
    /// decoder.decode(&mut buf)?;
    /// assert_eq!(decoder.wanted(), Some(253)); // the rest of a 256-byte body
    /// # Ok::<(), beamport::framing::FrameError>(())
    /// ```
    pub fn wanted(&self) -> Option<usize> {
        self.wanted
    }

    /// How many bytes of incomplete packets (headers included)
    /// [`decode_eof`](Self::decode_eof) has dropped so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::{Decoder, Framing, PacketSize};
    /// use bytes::BytesMut;
    ///
    /// let mut decoder = Decoder::new(Framing::Packet(PacketSize::One));
    /// let mut buf = BytesMut::from(&b"\x05abc"[..]);
    /// assert_eq!(decoder.decode_eof(&mut buf)?, None);
    /// assert_eq!(decoder.truncated(), 4);
    /// # Ok::<(), beamport::framing::FrameError>(())
    /// ```
    pub fn truncated(&self) -> usize {
        self.truncated
    }

    fn decode_packet(&mut self, size: PacketSize, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let len = match self.state {
            DecodeState::Data(len) => len,
            DecodeState::Head => {
                let header_len = size.header_len();
                if src.len() < header_len {
                    self.wanted = Some(header_len - src.len());
                    return Ok(None);
                }
                let len = (&src[..header_len]).get_uint(header_len);
                // At most 4 bytes: fits a usize on every supported target.
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&n| n <= self.packet_size)
                    .ok_or(FrameError::OverPacketSize { len, max: self.packet_size })?;
                src.advance(header_len);
                self.state = DecodeState::Data(len);
                len
            }
        };
        if src.len() < len {
            let missing = len - src.len();
            self.wanted = Some(missing);
            // Grow as the body arrives: a header is no reason to allocate 4 GiB.
            src.reserve(missing.min(MAX_RESERVE));
            return Ok(None);
        }
        self.state = DecodeState::Head;
        Ok(Some(Frame::Data(src.split_to(len).freeze())))
    }

    fn decode_line(&mut self, max: usize, src: &mut BytesMut) -> Option<Frame> {
        // Only the first L + 2 bytes decide the current line: an LF at index
        // L + 1 still ends a line of L bytes if a CR stands before it.
        let window = src.len().min(max.saturating_add(2));
        let start = self.next_index.min(window);
        let lf = memchr::memchr(b'\n', &src[start..window]).map(|i| start + i);
        match lf {
            Some(lf) => {
                let len = if lf > 0 && src[lf - 1] == b'\r' { lf - 1 } else { lf };
                if len <= max {
                    self.next_index = 0;
                    let mut line = src.split_to(lf + 1);
                    line.truncate(len);
                    return Some(Frame::Line { eol: true, data: line.freeze() });
                }
            }
            // L bytes, or L bytes and a CR that may be followed by an LF.
            None if window <= max || (window == max + 1 && src[max] == b'\r') => {
                self.next_index = window;
                return None;
            }
            None => {}
        }
        // The line is longer than L: hand out its first L bytes.
        self.next_index = lf.unwrap_or(window) - max;
        Some(Frame::Line { eol: false, data: src.split_to(max).freeze() })
    }
}

/// The header written before a payload of `len` bytes: N big-endian bytes in
/// `{packet, N}` mode, nothing in `stream` and `{line, L}` mode.
///
/// # Examples
///
/// ```
/// use beamport::framing::{header, Framing, PacketSize};
///
/// let h = header(Framing::Packet(PacketSize::Four), 2)?;
/// assert_eq!(h.as_bytes(), b"\0\0\0\x02");
/// assert!(header(Framing::Stream, 2)?.as_bytes().is_empty());
/// # Ok::<(), beamport::framing::FrameError>(())
/// ```
///
/// # Errors
///
/// [`FrameError::PacketTooLarge`] if `len` exceeds [`PacketSize::max_len`].
pub fn header(framing: Framing, len: usize) -> Result<Header, FrameError> {
    let Framing::Packet(size) = framing else {
        return Ok(Header { buf: [0; 4], start: 4 });
    };
    let max = size.max_len();
    let value = u32::try_from(len).ok().filter(|&n| u64::from(n) <= max).ok_or(FrameError::PacketTooLarge {
        len,
        header: size as u8,
        max,
    })?;
    Ok(Header { buf: value.to_be_bytes(), start: 4 - size.header_len() })
}

/// A length header built by [`header`].
///
/// # Examples
///
/// ```
/// use beamport::framing::{header, Framing, PacketSize};
///
/// let h = header(Framing::Packet(PacketSize::Two), 258)?;
/// assert_eq!(h.as_bytes(), [1, 2]);
/// # Ok::<(), beamport::framing::FrameError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Header {
    buf: [u8; 4],
    start: usize,
}

impl Header {
    /// The header's bytes: empty, or N bytes for `{packet, N}`.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::framing::{header, Framing, PacketSize};
    ///
    /// assert_eq!(header(Framing::Packet(PacketSize::One), 7)?.as_bytes(), [7]);
    /// # Ok::<(), beamport::framing::FrameError>(())
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl AsRef<[u8]> for Header {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Appends `data`, with its header, to `dst`.
///
/// # Examples
///
/// ```
/// use beamport::framing::{encode, Framing, PacketSize};
/// use bytes::BytesMut;
///
/// let mut dst = BytesMut::new();
/// encode(Framing::Packet(PacketSize::Four), b"ab", &mut dst)?;
/// assert_eq!(&dst[..], b"\0\0\0\x02ab");
/// # Ok::<(), beamport::framing::FrameError>(())
/// ```
///
/// # Errors
///
/// [`FrameError::PacketTooLarge`] as [`header`]; `dst` is left unchanged.
pub fn encode(framing: Framing, data: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    let header = header(framing, data.len())?;
    dst.reserve(header.as_bytes().len() + data.len());
    dst.put_slice(header.as_bytes());
    dst.put_slice(data);
    Ok(())
}
