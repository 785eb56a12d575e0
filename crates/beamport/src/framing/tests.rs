//! OTP's framing, example by example (docs/otp-semantics.md#packet-framing and
//! docs/otp-semantics.md#line-framing), fed as scripted reads.

use super::*;

fn line(max: usize) -> Framing {
    Framing::Line(NonZeroUsize::new(max).unwrap())
}

fn eol(s: &str) -> Frame {
    Frame::Line { eol: true, data: Bytes::copy_from_slice(s.as_bytes()) }
}

fn noeol(s: &str) -> Frame {
    Frame::Line { eol: false, data: Bytes::copy_from_slice(s.as_bytes()) }
}

fn data(s: &[u8]) -> Frame {
    Frame::Data(Bytes::copy_from_slice(s))
}

/// Feeds `reads` one after another; `None` in the output marks where the
/// decoder asked for more bytes (tokio-util's `Poll::Pending`). Ends with
/// the frames `decode_eof` yields.
fn script(decoder: &mut Decoder, reads: &[&[u8]]) -> Vec<Option<Frame>> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            out.push(Some(frame));
        }
        out.push(None);
    }
    while let Some(frame) = decoder.decode_eof(&mut buf).unwrap() {
        out.push(Some(frame));
    }
    assert!(buf.is_empty(), "decode_eof left {buf:?}");
    out
}

/// All frames of `input` read at once, and read split at every point.
fn frames(framing: Framing, input: &[u8]) -> Vec<Frame> {
    let whole: Vec<_> = script(&mut Decoder::new(framing), &[input]).into_iter().flatten().collect();
    for at in 0..=input.len() {
        let (a, b) = input.split_at(at);
        let split: Vec<_> = script(&mut Decoder::new(framing), &[a, b]).into_iter().flatten().collect();
        assert_eq!(split, whole, "split at {at}");
    }
    whole
}

#[test]
fn packet_e10_truncated_tail_is_dropped() {
    let mut decoder = Decoder::new(Framing::Packet(PacketSize::Two));
    assert_eq!(script(&mut decoder, &[b"\0\x03abc\0\x01d\0"]), [Some(data(b"abc")), Some(data(b"d")), None]);
    assert_eq!(decoder.truncated(), 1);
}

#[test]
fn packet_truncated_counts_header_and_body() {
    let mut decoder = Decoder::new(Framing::Packet(PacketSize::Four));
    assert_eq!(script(&mut decoder, &[b"\0\0\0\x09", b"abc"]), [None, None]);
    assert_eq!(decoder.truncated(), 7);
}

#[test]
fn packet_reassembled_across_reads() {
    let mut decoder = Decoder::new(Framing::Packet(PacketSize::Two));
    assert_eq!(
        script(&mut decoder, &[b"\0", b"\x09abc", b"defghi\0\x01", b"z"]),
        [None, None, Some(data(b"abcdefghi")), None, Some(data(b"z")), None]
    );
}

#[test]
fn packet_empty_payload() {
    for size in [PacketSize::One, PacketSize::Two, PacketSize::Four] {
        let mut buf = BytesMut::new();
        encode(Framing::Packet(size), b"", &mut buf).unwrap();
        assert_eq!(buf.len(), size.header_len());
        assert_eq!(frames(Framing::Packet(size), &buf), [data(b"")]);
    }
}

#[test]
fn packet_split_at_every_point() {
    let framing = Framing::Packet(PacketSize::One);
    assert_eq!(frames(framing, b"\x02ab\x00\x03cde"), [data(b"ab"), data(b""), data(b"cde")]);
}

#[test]
fn packet_max_len() {
    let cases = [(PacketSize::One, 255), (PacketSize::Two, 65_535)];
    for (size, max) in cases {
        let framing = Framing::Packet(size);
        let mut buf = BytesMut::new();
        encode(framing, &vec![7; max], &mut buf).unwrap();
        assert_eq!(buf.len(), size.header_len() + max);
        let err = encode(framing, &vec![7; max + 1], &mut buf).unwrap_err();
        assert_eq!(err, FrameError::PacketTooLarge { len: max + 1, header: size as u8, max: max as u64 });
        assert_eq!(buf.len(), size.header_len() + max, "dst unchanged on error");
    }
    let framing = Framing::Packet(PacketSize::Four);
    assert_eq!(header(framing, u32::MAX as usize).unwrap().as_bytes(), [0xff; 4]);
    assert!(header(framing, u32::MAX as usize + 1).is_err());
}

#[test]
fn packet_e10_wire_format() {
    let mut buf = BytesMut::new();
    encode(Framing::Packet(PacketSize::Four), b"ab", &mut buf).unwrap();
    assert_eq!(&buf[..], b"\0\0\0\x02ab");
}

#[test]
fn packet_huge_header_reserves_little() {
    let mut decoder = Decoder::new(Framing::Packet(PacketSize::Four));
    let mut buf = BytesMut::from(&b"\xff\xff\xff\xffabc"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert_eq!(decoder.wanted(), Some(u32::MAX as usize - 3));
    assert!(buf.capacity() <= 2 * MAX_RESERVE, "{}", buf.capacity());
    assert_eq!(decoder.decode_eof(&mut buf).unwrap(), None);
    assert_eq!(decoder.truncated(), 7);
}

#[test]
fn packet_decoder_is_reusable_after_eof() {
    let mut decoder = Decoder::new(Framing::Packet(PacketSize::One));
    let mut buf = BytesMut::from(&b"\x05ab"[..]);
    assert_eq!(decoder.decode_eof(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\x01z");
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(data(b"z")));
}

#[test]
fn line_e11_crlf_is_stripped() {
    assert_eq!(frames(line(10), b"ab\r\n"), [eol("ab")]);
}

#[test]
fn line_e11_lone_cr_stays() {
    assert_eq!(frames(line(10), b"cd\rde\n"), [eol("cd\rde")]);
    assert_eq!(frames(line(10), b"\r"), [noeol("\r")]);
    assert_eq!(frames(line(10), b"a\r\rb\r\r\n"), [eol("a\r\rb\r")]);
}

#[test]
fn line_e11_empty_lines() {
    assert_eq!(frames(line(3), b"\n\r\n"), [eol(""), eol("")]);
}

#[test]
fn line_e11_long_lines() {
    // Exactly L bytes, L + 1 bytes, 2L + 1 bytes.
    assert_eq!(frames(line(3), b"abc\n"), [eol("abc")]);
    assert_eq!(frames(line(3), b"abcd\n"), [noeol("abc"), eol("d")]);
    assert_eq!(frames(line(3), b"abcdefg\n"), [noeol("abc"), noeol("def"), eol("g")]);
    assert_eq!(frames(line(3), b"abcdef\n"), [noeol("abc"), eol("def")]);
}

#[test]
fn line_cr_counts_against_l_only_when_it_is_data() {
    // The CR of a CR LF does not count...
    assert_eq!(frames(line(3), b"abc\r\n"), [eol("abc")]);
    // ...a CR followed by anything else does.
    assert_eq!(frames(line(3), b"ab\rc\n"), [noeol("ab\r"), eol("c")]);
    assert_eq!(frames(line(3), b"abc\rd\n"), [noeol("abc"), eol("\rd")]);
    assert_eq!(frames(line(3), b"abc\r\r\n"), [noeol("abc"), eol("\r")]);
}

#[test]
fn line_e11_partial_lines_wait_for_the_rest() {
    let mut decoder = Decoder::new(line(80));
    assert_eq!(script(&mut decoder, &[b"abc", b"def\n"]), [None, Some(eol("abcdef")), None]);
}

#[test]
fn line_e11_unterminated_rest_at_eof() {
    let mut decoder = Decoder::new(line(80));
    assert_eq!(script(&mut decoder, &[b"a\nb"]), [Some(eol("a")), None, Some(noeol("b"))]);
    assert_eq!(frames(line(2), b"abcde"), [noeol("ab"), noeol("cd"), noeol("e")]);
    // A CR that never met its LF is data.
    assert_eq!(frames(line(2), b"ab\r"), [noeol("ab"), noeol("\r")]);
    assert_eq!(frames(line(3), b"ab\r"), [noeol("ab\r")]);
}

#[test]
fn line_noeol_as_soon_as_the_line_is_known_to_be_long() {
    let mut decoder = Decoder::new(line(3));
    assert_eq!(
        script(&mut decoder, &[b"abc", b"d", b"ef\r", b"\n"]),
        [None, Some(noeol("abc")), None, None, Some(eol("def")), None]
    );
}

#[test]
fn line_buffer_stays_bounded() {
    let mut decoder = Decoder::new(line(4));
    let mut buf = BytesMut::new();
    for _ in 0..1000 {
        buf.extend_from_slice(b"xyz\r");
        while decoder.decode(&mut buf).unwrap().is_some() {}
        assert!(buf.len() <= 5, "{}", buf.len());
    }
}

#[test]
fn line_resume_index_skips_scanned_bytes() {
    let mut decoder = Decoder::new(line(100));
    let mut buf = BytesMut::from("abcdef");
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert_eq!(decoder.next_index, 6);
    buf.extend_from_slice(b"g\n");
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(eol("abcdefg")));
    assert_eq!(decoder.next_index, 0);
}

#[test]
fn line_huge_l() {
    let framing = Framing::Line(NonZeroUsize::MAX);
    assert_eq!(frames(framing, b"ab\r\ncd"), [eol("ab"), noeol("cd")]);
}

#[test]
fn line_output_is_unchanged() {
    let mut buf = BytesMut::new();
    encode(line(2), b"abc\n", &mut buf).unwrap();
    assert_eq!(&buf[..], b"abc\n");
}

#[test]
fn stream_is_what_was_read() {
    let mut decoder = Decoder::new(Framing::Stream);
    assert_eq!(
        script(&mut decoder, &[b"abc", b"", b"de\nfg"]),
        [Some(data(b"abc")), None, None, Some(data(b"de\nfg")), None]
    );
}

#[test]
fn packet_size_admits_a_packet_of_exactly_its_size() {
    let mut decoder = Decoder::new(Framing::Packet(PacketSize::Two)).with_packet_size(Some(3));
    assert_eq!(script(&mut decoder, &[b"\0\x03a", b"bc\0\0"]), [None, Some(data(b"abc")), Some(data(b"")), None]);
}

#[test]
fn packet_size_refuses_a_header_over_it_before_its_body() {
    for split in 0..=4 {
        let mut decoder = Decoder::new(Framing::Packet(PacketSize::Four)).with_packet_size(Some(1 << 20));
        let input = b"\0\0\0\x01x\0\x10\0\x01";
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&input[..5 + split]);
        assert_eq!(decoder.decode(&mut buf), Ok(Some(data(b"x"))));
        if split < 4 {
            assert_eq!(decoder.decode(&mut buf), Ok(None), "a partial header is no verdict yet");
            assert_eq!(decoder.wanted(), Some(4 - split));
            buf.extend_from_slice(&input[5 + split..]);
        }
        let err = FrameError::OverPacketSize { len: (1 << 20) + 1, max: 1 << 20 };
        assert_eq!(decoder.decode(&mut buf), Err(err.clone()));
        assert_eq!(decoder.decode(&mut buf), Err(err.clone()), "the header stays: the same error again");
        assert_eq!(decoder.decode_eof(&mut buf), Err(err));
        assert_eq!(buf.len(), 4);
        assert!(buf.capacity() < 1 << 20, "nothing reserved for the refused body");
    }
}

#[test]
fn without_a_packet_size_any_header_is_accepted() {
    let mut decoder = Decoder::new(Framing::Packet(PacketSize::Four)).with_packet_size(None);
    let mut buf = BytesMut::from(&b"\xff\xff\xff\xffab"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(decoder.wanted(), Some(u32::MAX as usize - 2));
}
