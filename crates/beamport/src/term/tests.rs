//! The codec against bytes the VM wrote (OTP 25), and its answers to bad input.

use num_bigint::BigInt;

use super::*;

fn atom(s: &str) -> Term {
    Term::from(Atom::from(s))
}
fn int(i: i32) -> Term {
    Term::from(FixInteger::from(i))
}
fn tuple(v: Vec<Term>) -> Term {
    Term::from(Tuple::from(v))
}
fn list(v: Vec<Term>) -> Term {
    Term::from(List::from(v))
}
fn big(v: BigInt) -> Term {
    Term::from(BigInteger { value: v })
}

/// `:erlang.term_to_binary/1` of OTP 25, and the term beamport reads from it.
fn otp25() -> Vec<(&'static str, Vec<u8>, Term)> {
    let mut large_big = vec![131, 111, 0, 0, 1, 7, 1];
    large_big.extend(std::iter::repeat_n(0, 262));
    large_big.push(16);
    let node = "nonode@nohost";
    vec![
        ("ok", vec![131, 100, 0, 2, 111, 107], atom("ok")),
        ("'é' (Latin-1)", vec![131, 100, 0, 1, 233], atom("é")),
        ("'ü€' (UTF-8)", vec![131, 119, 5, 195, 188, 226, 130, 172], atom("ü€")),
        ("-1", vec![131, 98, 255, 255, 255, 255], int(-1)),
        ("[-1, 2]", vec![131, 108, 0, 0, 0, 2, 98, 255, 255, 255, 255, 97, 2, 106], list(vec![int(-1), int(2)])),
        ("1 bsl 64", vec![131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], big(BigInt::from(1u8) << 64usize)),
        ("-(1 bsl 2100)", large_big, big(-(BigInt::from(1u8) << 2100usize))),
        ("1.5", vec![131, 70, 63, 248, 0, 0, 0, 0, 0, 0], Term::from(Float { value: 1.5 })),
        ("<<1,2,3>>", vec![131, 109, 0, 0, 0, 3, 1, 2, 3], Term::from(Binary::from(vec![1, 2, 3]))),
        ("<<5:3>>", vec![131, 77, 0, 0, 0, 1, 3, 160], Term::from(BitBinary::from((vec![5], 3)))),
        ("\"abc\"", vec![131, 107, 0, 3, 97, 98, 99], Term::from(ByteList::from(b"abc"))),
        ("[1|2]", vec![131, 108, 0, 0, 0, 1, 97, 1, 97, 2], Term::from(ImproperList::from((vec![int(1)], int(2))))),
        ("{}", vec![131, 104, 0], tuple(vec![])),
        ("#{a => 1}", vec![131, 116, 0, 0, 0, 1, 100, 0, 1, 97, 97, 1], Term::from(Map::from([(atom("a"), int(1))]))),
        (
            "<0.80.0>",
            [&[131, 88, 100, 0, 13][..], node.as_bytes(), &[0, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0]].concat(),
            Term::from(eetf::Pid::new(node, 80, 0, 0)),
        ),
        (
            "#Port<0.5>",
            [&[131, 89, 100, 0, 13][..], node.as_bytes(), &[0, 0, 0, 5, 0, 0, 0, 0]].concat(),
            Term::from(eetf::Port { node: Atom::from(node), id: 5, creation: 0 }),
        ),
        (
            "#Ref<0.1.2.3>",
            [&[131, 90, 0, 3, 100, 0, 13][..], node.as_bytes(), &[0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1]]
                .concat(),
            Term::from(Reference { node: Atom::from(node), id: vec![3, 2, 1], creation: 0 }),
        ),
        (
            "fun lists:map/2",
            vec![131, 113, 100, 0, 5, 108, 105, 115, 116, 115, 100, 0, 3, 109, 97, 112, 97, 2],
            Term::from(ExternalFun::from(("lists", "map", 2))),
        ),
        (
            "0.1, [{minor_version, 0}]",
            [&[131, 99][..], b"1.00000000000000005551e-01", &[0; 5]].concat(),
            Term::from(Float { value: 0.1 }),
        ),
        (
            "binary:copy(<<\"a\">>, 100), [compressed]",
            vec![131, 80, 0, 0, 0, 105, 120, 156, 203, 101, 96, 96, 72, 73, 164, 3, 0, 0, 206, 117, 38, 182],
            Term::from(Binary::from(vec![b'a'; 100])),
        ),
    ]
}

#[test]
fn decodes_what_the_vm_writes() {
    for (name, bytes, term) in otp25() {
        assert_eq!(decode(&bytes), Ok(term.clone()), "{name}");
        // And back: what we write decodes to the same term.
        let again = encode(&term).unwrap();
        assert_eq!(decode(&again), Ok(term.clone()), "{name} re-encoded: {again:?}");
        assert_eq!(decode(&encode_compressed(&term).unwrap()), Ok(term), "{name} compressed");
    }
}

#[test]
fn encodes_as_the_vm_does() {
    // Lists of bytes as strings, small integers in one byte, others in four, atoms in UTF-8.
    assert_eq!(encode(&list(vec![int(1), int(255)])).unwrap(), [131, 107, 0, 2, 1, 255]);
    assert_eq!(encode(&list(vec![int(-1)])).unwrap(), [131, 108, 0, 0, 0, 1, 98, 255, 255, 255, 255, 106]);
    assert_eq!(encode(&list(vec![])).unwrap(), [131, 106]);
    assert_eq!(encode(&Term::from(ByteList::from(Vec::new()))).unwrap(), [131, 106]);
    assert_eq!(encode(&atom("é")).unwrap(), [131, 119, 2, 0xc3, 0xa9]);
    // A big integer that fits is written small, as the VM would.
    assert_eq!(encode(&big(BigInt::from(7))).unwrap(), [131, 97, 7]);
    assert_eq!(encode(&big(BigInt::from(1u8) << 31usize)).unwrap(), [131, 110, 4, 0, 0, 0, 0, 128]);
    // A long byte list is a list of integers.
    let long = encode(&Term::from(ByteList::from(vec![1; 70_000]))).unwrap();
    assert_eq!(long[..6], [131, 108, 0, 1, 0x11, 0x70]);
    assert_eq!(decode(&long).unwrap(), list(vec![int(1); 70_000]));
    // Bitstrings with 8 bits in the last byte are binaries.
    assert_eq!(encode(&Term::from(BitBinary::from((vec![1, 2], 8)))).unwrap(), [131, 109, 0, 0, 0, 2, 1, 2]);
    assert_eq!(encode(&Term::from(BitBinary::from((vec![], 3)))).unwrap(), [131, 109, 0, 0, 0, 0]);
}

#[test]
fn refuses_what_cannot_be_encoded() {
    assert_eq!(encode(&atom(&"é".repeat(256))), Err(EncodeError::AtomTooLong(256)));
    assert!(encode(&atom(&"é".repeat(255))).is_ok()); // 510 bytes: ATOM_UTF8_EXT
    assert!(matches!(encode(&Term::from(Float { value: f64::INFINITY })), Err(EncodeError::NonFinite(_))));
    assert_eq!(encode(&Term::from(BitBinary::from((vec![1], 0)))), Err(EncodeError::BitSize(0)));
    assert_eq!(encode(&Term::from(BitBinary::from((vec![1], 9)))), Err(EncodeError::BitSize(9)));
    let mut deep = list(vec![]);
    for _ in 0..MAX_DEPTH {
        deep = tuple(vec![deep]);
    }
    assert!(encode(&deep).is_ok());
    assert_eq!(encode(&tuple(vec![deep])), Err(EncodeError::TooDeep(MAX_DEPTH)));
}

/// The VM's answer to each of these is `badarg` (checked with `binary_to_term/1` on OTP 25).
#[test]
fn refuses_what_the_vm_refuses() {
    use DecodeReason::*;
    let cases: Vec<(&str, Vec<u8>, usize, DecodeReason)> = vec![
        ("empty", vec![], 0, Truncated { what: "the version byte", needed: 1 }),
        ("version", vec![130, 106], 0, Version(130)),
        ("no term", vec![131], 1, Truncated { what: "a tag", needed: 1 }),
        ("unknown tag", vec![131, 1], 1, UnknownTag(1)),
        ("distribution header", vec![131, 68], 1, DistributionOnly(68)),
        ("atom cache reference", vec![131, 82, 0], 1, DistributionOnly(82)),
        ("compressed inside", vec![131, 104, 1, 80, 0, 0, 0, 1], 3, NestedCompression),
        ("duplicate keys", vec![131, 116, 0, 0, 0, 2, 106, 106, 106, 106], 8, DuplicateKey),
        ("bitstring, 0 bits", vec![131, 77, 0, 0, 0, 1, 0, 255], 2, BitSize { len: 1, bits: 0 }),
        ("bitstring, 9 bits", vec![131, 77, 0, 0, 0, 1, 9, 255], 2, BitSize { len: 1, bits: 9 }),
        ("empty bitstring with bits", vec![131, 77, 0, 0, 0, 0, 3], 2, BitSize { len: 0, bits: 3 }),
        ("sign", vec![131, 110, 1, 2, 1], 3, Sign(2)),
        ("NaN", vec![131, 70, 127, 248, 0, 0, 0, 0, 0, 0], 1, NonFinite),
        ("float text", [&[131, 99][..], b"x", &[0; 30]].concat(), 2, FloatText("x".into())),
        ("UTF-8 atom", vec![131, 119, 1, 233], 1, AtomNotUtf8),
        (
            "pid's node",
            vec![131, 88, 106, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            2,
            Expected { what: "a pid's node", expected: "an atom" },
        ),
        (
            "truncated binary",
            vec![131, 109, 0, 0, 0, 3, 1],
            2,
            TooLong { what: "a binary", claimed: 3, unit: "bytes", left: 1 },
        ),
        ("truncated tuple", vec![131, 104, 2, 97, 1], 5, Truncated { what: "a tag", needed: 1 }),
        (
            "export arity",
            vec![131, 113, 119, 1, b'm', 119, 1, b'f', 98, 0, 0, 1, 0],
            8,
            Expected { what: "a fun's arity", expected: "an integer from 0 to 255" },
        ),
    ];
    for (name, bytes, offset, reason) in cases {
        assert_eq!(decode(&bytes), Err(DecodeError { offset, in_compressed: false, reason }), "{name}");
    }
    let mut long_atom = vec![131, 118, 1, 0];
    long_atom.extend([b'a'; 256]);
    assert_eq!(decode(&long_atom).unwrap_err().reason, AtomTooLong(256));
}

#[test]
fn equal_map_keys_are_duplicates_whatever_their_order() {
    // #{#{a => 1, b => 2} => x, #{b => 2, a => 1} => y}: eetf hashes a map in its iteration
    // order, so a HashMap alone may take these keys for two.
    let ab = [116, 0, 0, 0, 2, 119, 1, b'a', 97, 1, 119, 1, b'b', 97, 2];
    let ba = [116, 0, 0, 0, 2, 119, 1, b'b', 97, 2, 119, 1, b'a', 97, 1];
    let bytes = [&[131, 116, 0, 0, 0, 2][..], &ab, &[119, 1, b'x'], &ba, &[119, 1, b'y']].concat();
    for _ in 0..20 {
        let err = decode(&bytes).unwrap_err();
        assert_eq!((err.offset, err.reason), (6 + ab.len() + 3, DecodeReason::DuplicateKey));
    }
    // Different maps as keys are fine, nested too.
    let ac = [116, 0, 0, 0, 2, 119, 1, b'a', 97, 1, 119, 1, b'c', 97, 2];
    let ok = [&[131, 116, 0, 0, 0, 2][..], &ab, &[119, 1, b'x'], &ac, &[119, 1, b'y']].concat();
    assert!(decode(&ok).is_ok());
}

#[test]
fn follows_the_vm_where_it_is_lenient() {
    // Bytes after the term are ignored; a list's tail that is a list continues it; an
    // empty list with a tail is the tail; a big integer that fits is small.
    assert_eq!(decode(&[131, 106, 0]), Ok(list(vec![])));
    let tail_list = [131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 106];
    assert_eq!(decode(&tail_list), Ok(Term::from(ByteList::from(vec![1, 2]))));
    // A list of bytes is a ByteList however it is written, as the VM sees no difference.
    assert_eq!(decode(&[131, 108, 0, 0, 0, 1, 97, 7, 106]), Ok(Term::from(ByteList::from(vec![7]))));
    assert_eq!(decode(&[131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 1, 2]), Ok(Term::from(ByteList::from(vec![1, 2]))));
    assert_eq!(decode(&[131, 108, 0, 0, 0, 0, 119, 1, b'a']), Ok(atom("a")));
    assert_eq!(decode(&[131, 110, 1, 1, 5]), Ok(int(-5)));
    assert_eq!(decode(&[131, 107, 0, 0]), Ok(list(vec![])));
    assert_eq!(decode(&[131, 77, 0, 0, 0, 0, 0]), Ok(Term::from(Binary::from(vec![]))));
    assert_eq!(decode(&[131, 77, 0, 0, 0, 1, 8, 7]), Ok(Term::from(Binary::from(vec![7]))));
    // Only the bits the last byte claims count.
    assert_eq!(decode(&[131, 77, 0, 0, 0, 1, 3, 0xff]), Ok(Term::from(BitBinary::from((vec![7], 3)))));
}

#[test]
fn hostile_lengths_are_errors_not_allocations() {
    let four_g = [0xff; 4];
    let cases: Vec<Vec<u8>> = vec![
        [&[131, 108][..], &four_g, &[106]].concat(),                           // list
        [&[131, 105][..], &four_g].concat(),                                   // tuple
        [&[131, 116][..], &four_g].concat(),                                   // map
        [&[131, 109][..], &four_g].concat(),                                   // binary
        [&[131, 77][..], &four_g, &[3]].concat(),                              // bitstring
        [&[131, 111][..], &four_g, &[0]].concat(),                             // big integer
        [&[131, 112, 0, 0, 0, 0, 0][..], &[0; 16], &[0; 4], &four_g].concat(), // fun environment
        vec![131, 107, 0xff, 0xff],                                            // string
        vec![131, 118, 0xff, 0xff],                                            // atom
        vec![131, 90, 0xff, 0xff, 119, 0, 0, 0, 0, 0],                         // reference
    ];
    for bytes in cases {
        let err = decode(&bytes).unwrap_err();
        assert!(
            matches!(err.reason, DecodeReason::TooLong { .. } | DecodeReason::Truncated { .. }),
            "{bytes:?}: {err}"
        );
    }
    // Nested claims share the input: each must leave room for the others' elements.
    let nested = [&[131, 108, 0, 0, 0, 3][..], &[108, 0, 0, 0, 3], &[106]].concat();
    let err = decode(&nested).unwrap_err();
    assert_eq!(
        (err.offset, err.to_string().as_str()),
        (7, "at byte 7: a list claims 3 elements, more than the 0 bytes left can hold")
    );
    // A compressed term that claims more than zlib can make of its bytes.
    let bomb = [&[131, 80][..], &four_g, &[120, 156, 3, 0, 0, 0, 0, 1]].concat();
    assert_eq!(
        decode(&bomb).unwrap_err().reason,
        DecodeReason::CompressedTooLarge { declared: u32::MAX, limit: 8 * 1032 }
    );
}

#[test]
fn compressed_terms_must_hold_their_size() {
    let good = encode_compressed(&Term::from(Binary::from(vec![b'a'; 1000]))).unwrap();
    let size = u32::from_be_bytes([good[2], good[3], good[4], good[5]]);
    for (declared, more) in [(size + 1, false), (size - 1, true)] {
        let mut bad = good.clone();
        bad[2..6].copy_from_slice(&declared.to_be_bytes());
        let err = decode(&bad).unwrap_err();
        assert!(matches!(err.reason, DecodeReason::CompressedSize { more: m, .. } if m == more), "{err}");
    }
    let mut corrupt = good.clone();
    corrupt[8] ^= 0xff;
    assert!(matches!(decode(&corrupt).unwrap_err().reason, DecodeReason::Zlib(_)));
    // An error inside the decompressed bytes says so.
    let inner = [104, 2, 97, 1]; // {1, … cut short
    let mut z = libflate::zlib::Encoder::new(Vec::new()).unwrap();
    std::io::Write::write_all(&mut z, &inner).unwrap();
    let bytes = [&[131, 80, 0, 0, 0, 4][..], &z.finish().into_result().unwrap()].concat();
    let err = decode(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "at byte 4 of the decompressed term: the input ends inside a tag (1 more bytes needed)"
    );
}

#[test]
fn depth_is_limited() {
    let nest = |n: usize| {
        let mut b = vec![131];
        b.extend(std::iter::repeat_n([104, 1], n).flatten());
        b.push(106);
        b
    };
    assert!(decode(&nest(MAX_DEPTH)).is_ok());
    let err = decode(&nest(MAX_DEPTH + 1)).unwrap_err();
    assert_eq!((err.offset, err.reason), (1 + 2 * MAX_DEPTH + 1, DecodeReason::TooDeep(MAX_DEPTH)));
    // 100 000 levels in 200 KB: an error, not a stack overflow.
    assert!(decode(&nest(100_000)).is_err());
}

#[test]
fn prints_like_iex() {
    let cases = [
        ("ok", ":ok"),
        ("true", "true"),
        ("'hello world'", ":\"hello world\""),
        ("'Elixir.Enum'", "Enum"),
        ("{}", "{}"),
        ("[]", "[]"),
        ("\"abc\"", "'abc'"),
        ("[1, 2, 300]", "[1, 2, 300]"),
        ("[104, 233]", "[104, 233]"),
        ("[{a, 1}, {b, 2}]", "[a: 1, b: 2]"),
        ("<<\"é\"/utf8>>", "\"é\""),
        ("<<1, 2>>", "<<1, 2>>"),
        ("<<1, 5:3>>", "<<1, 5::size(3)>>"),
        ("#{b => 2, a => 1}", "%{a: 1, b: 2}"),
        ("#{1 => x, <<\"k\">> => y, a => z}", "%{1 => :x, :a => :z, \"k\" => :y}"),
        ("#{'__struct__' => 'Elixir.User', name => <<\"ada\">>}", "%User{name: \"ada\"}"),
        ("[1 | 2]", "[1 | 2]"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("-5", "-5"),
    ];
    for (text, iex_text) in cases {
        assert_eq!(iex(&parse(text).unwrap()).to_string(), iex_text, "{text}");
    }
    let pid = Term::from(eetf::Pid::new("nonode@nohost", 80, 0, 0));
    assert_eq!(iex(&pid).to_string(), "#PID<0.80.0>");
    assert_eq!(iex(&Term::from(ExternalFun::from(("lists", "map", 2)))).to_string(), "&:lists.map/2");
}

/// `io_lib_format:fwrite_g/1`'s output on OTP 25, which iex uses.
#[test]
fn prints_floats_like_erlang() {
    let cases = [
        (1.0, "1.0"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (100.0, "100.0"),
        (1.0e15, "1.0e15"),
        (1.0e16, "1.0e16"),
        (123456789012345680.0, "1.2345678901234568e17"),
        (0.001, "0.001"),
        (0.0001, "0.0001"),
        (1.0e-5, "1.0e-5"),
        (1.234e-7, "1.234e-7"),
        (-2.5, "-2.5"),
        (5.0e-324, "5.0e-324"),
        (1.7976931348623157e308, "1.7976931348623157e308"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (3.0e5, "3.0e5"),
        (12345.678, "12345.678"),
    ];
    for (v, text) in cases {
        assert_eq!(iex(&Term::from(Float { value: v })).to_string(), text, "{v:e}");
    }
}

#[test]
fn parses_erlang_syntax() {
    let t =
        parse("{ok, [1, -2, 3.5e1, $a, 16#FF, 2#101, 1_000], 'a b', :ok, \"hi\\n\", <<\"x\", 1, -1, 1:1>>}.").unwrap();
    let expected = tuple(vec![
        atom("ok"),
        list(vec![int(1), int(-2), Term::from(Float { value: 35.0 }), int(97), int(255), int(5), int(1000)]),
        atom("a b"),
        atom("ok"),
        Term::from(ByteList::from(b"hi\n")),
        Term::from(BitBinary::from((vec![b'x', 1, 255, 1], 1))),
    ]);
    assert_eq!(t, expected);
    assert_eq!(parse("\"ü€\"").unwrap(), list(vec![int(0xfc), int(0x20ac)]));
    assert_eq!(parse("[a, b | [c]]").unwrap(), parse("[a, b, c]").unwrap());
    assert_eq!(parse("%{a => 1}").unwrap(), parse("#{a => 1}").unwrap());
    assert_eq!(parse("\"\\x{20AC}\\101\\^a\"").unwrap(), list(vec![int(0x20ac), int(65), int(1)]));
}

#[test]
fn parse_errors_name_the_column() {
    let err = |text: &str| parse(text).unwrap_err();
    assert_eq!(err("").to_string(), "column 1: the line ends; expected a term");
    assert_eq!(err("{a b}").to_string(), "column 4: found 'b', expected ',' or '}'");
    assert_eq!(err("[1,]").to_string(), "column 4: found ']', expected a term");
    assert_eq!(err("#{a => }").to_string(), "column 8: found '}', expected a term");
    assert_eq!(err("#{a, b}").to_string(), "column 4: found ',', expected '=>'");
    assert_eq!(err("\"abc").to_string(), "column 5: the line ends; expected a closing '\"'");
    assert_eq!(err("<<256>>").to_string(), "column 3: 256 does not fit in 8 bits");
    assert_eq!(err("<<\"€\">>").reason, ParseReason::Wide('€'));
    assert_eq!(err("ok ok").to_string(), "column 4: 'o' after the term");
    assert_eq!(err("1.5e999").reason, ParseReason::Number("1.5e999".into()));
    assert_eq!(err("37#1").reason, ParseReason::Number("37#1".into()));
    assert_eq!(err(&"[".repeat(MAX_DEPTH + 1)).reason, ParseReason::TooDeep(MAX_DEPTH));
    assert_eq!(err(&format!("'{}'", "a".repeat(256))).reason, ParseReason::AtomTooLong(256));
}

mod serde_shapes {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        NotFound,
        Circle(f64),
        Move(i32, i32),
        Rect {
            w: u32,
            h: u32,
        },
        #[serde(rename = "EXIT")]
        Exit,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct User {
        name: String,
        age: Option<u8>,
        tags: Vec<String>,
        shape: Shape,
        unit: (),
    }

    fn shape(text: &str) -> String {
        iex(&to_term(&from_term::<Shape>(&parse(text).unwrap()).unwrap()).unwrap()).to_string()
    }

    #[test]
    fn variants_are_atoms_and_tagged_tuples() {
        let cases = [
            (Shape::Empty, ":empty"),
            (Shape::NotFound, ":not_found"),
            (Shape::Circle(1.5), "{:circle, 1.5}"),
            (Shape::Move(1, -2), "{:move, 1, -2}"),
            (Shape::Rect { w: 2, h: 3 }, "{:rect, %{h: 3, w: 2}}"),
            (Shape::Exit, ":EXIT"),
        ];
        for (value, text) in cases {
            let t = to_term(&value).unwrap();
            assert_eq!(iex(&t).to_string(), text);
            assert_eq!(from_term::<Shape>(&t).unwrap(), value);
            assert_eq!(from_term::<Shape>(&decode(&encode(&t).unwrap()).unwrap()).unwrap(), value);
        }
        // Struct variants also from keyword lists; the Rust name is accepted too.
        assert_eq!(shape("{rect, [{w, 1}, {h, 2}]}"), "{:rect, %{h: 2, w: 1}}");
        assert_eq!(shape("'NotFound'"), ":not_found");
        let err = from_term::<Shape>(&parse("{square, 1}").unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "expected a variant of Shape, found {:square, 1}");
    }

    #[test]
    fn results_are_ok_and_error_tuples() {
        let ok: Result<(), String> = Ok(());
        assert_eq!(iex(&to_term(&ok).unwrap()).to_string(), ":ok");
        let err: Result<(), String> = Err("no".into());
        assert_eq!(iex(&to_term(&err).unwrap()).to_string(), "{:error, \"no\"}");
        assert_eq!(from_term::<Result<(), String>>(&parse(":ok").unwrap()).unwrap(), Ok(()));
        assert_eq!(from_term::<Result<u8, u8>>(&parse("{error, 3}").unwrap()).unwrap(), Err(3));
    }

    #[test]
    fn structs_are_maps_with_atom_keys() {
        let u = User { name: "ada".into(), age: None, tags: vec!["x".into()], shape: Shape::Empty, unit: () };
        let t = to_term(&u).unwrap();
        assert_eq!(iex(&t).to_string(), r#"%{age: nil, name: "ada", shape: :empty, tags: ["x"], unit: nil}"#);
        assert_eq!(from_term::<User>(&t).unwrap(), u);
        // From Erlang's shapes: a proplist, charlists for strings, `undefined` for None.
        let erl = parse("[{name, \"ada\"}, {age, undefined}, {tags, [\"x\"]}, {shape, empty}, {unit, nil}]").unwrap();
        assert_eq!(from_term::<User>(&erl).unwrap(), u);
        let err = from_term::<User>(&parse("#{name => 1}").unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "expected a string, found 1");
    }

    #[test]
    fn maps_numbers_and_bytes() {
        let m: BTreeMap<String, i64> = [("a".to_string(), 1), ("b".to_string(), i64::MIN)].into();
        let t = to_term(&m).unwrap();
        assert_eq!(iex(&t).to_string(), r#"%{"a" => 1, "b" => -9223372036854775808}"#);
        assert_eq!(from_term::<BTreeMap<String, i64>>(&t).unwrap(), m);
        assert_eq!(from_term::<u128>(&to_term(&u128::MAX).unwrap()).unwrap(), u128::MAX);
        assert_eq!(from_term::<f64>(&parse("2").unwrap()).unwrap(), 2.0);
        assert_eq!(from_term::<char>(&parse("<<\"é\"/utf8>>").unwrap()).unwrap(), 'é');
        assert_eq!(from_term::<(u8, String)>(&parse("{1, <<\"a\">>}").unwrap()).unwrap(), (1, "a".into()));
        assert_eq!(from_term::<Vec<u8>>(&parse("\"ab\"").unwrap()).unwrap(), b"ab");
        let bin = Term::from(Binary::from(&b"zero-copy"[..]));
        let borrowed: &str = from_term(&bin).unwrap();
        assert_eq!(borrowed, "zero-copy");
        assert!(to_term(&f64::INFINITY).is_err());
        assert_eq!(
            from_term::<u8>(&parse("-1").unwrap()).unwrap_err(),
            SerdeError::Mismatch { expected: "u8".into(), found: "-1".into() }
        );
    }
}
