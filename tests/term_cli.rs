//! `beamport open --term`: lines of Erlang syntax in, packets printed as terms out.

use std::io::Write;
use std::process::{Command, Stdio};

#[path = "term/mod.rs"]
mod term_support;

/// Runs `beamport open --term ARGS` with `stdin`; returns stdout and stderr.
fn open_term(args: &[&str], stdin: &str) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_beamport"))
        .args(["open", "--term"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let port_number = |s: &str| {
        let parts = s.split("#Port<0.").collect::<Vec<_>>();
        parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part.to_string()
                } else {
                    format!("#Port<0.N{}", part.trim_start_matches(|c: char| c.is_ascii_digit()))
                }
            })
            .collect::<String>()
    };
    (port_number(&String::from_utf8(out.stdout).unwrap()), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn lines_are_terms_and_packets_print_as_terms() {
    let (out, err) =
        open_term(&["--", "cat"], "{ok, [1,2,3], <<\"bin\">>, #{a => 1}}\n{oops\n\n'Quoted', 2.5, \"str\"\n[a | b]\n");
    assert_eq!(
        out,
        "{#Port<0.N>, {:data, {:ok, [1, 2, 3], \"bin\", %{a: 1}}}}\n\
         {#Port<0.N>, {:data, [:a | :b]}}\n\
         {:EXIT, #Port<0.N>, :normal}\n"
    );
    assert_eq!(
        err,
        "beamport open: line 2 not sent: column 6: the line ends; expected ',' or '}'\n\
         beamport open: line 4 not sent: column 9: ',' after the term\n"
    );
}

#[test]
fn packet_size_and_a_term_program() {
    // `cat` echoes {packet, 2} frames; term_server answers calls.
    let (out, _) = open_term(&["--packet", "2", "--", "cat"], "x\n");
    assert_eq!(out, "{#Port<0.N>, {:data, :x}}\n{:EXIT, #Port<0.N>, :normal}\n");
    let server = term_support::term_example("term_server");
    let calls = "{call, 1, {put, <<\"k\">>, [1, 2.5]}}\n{call, 2, {get, <<\"k\">>}}\n";
    let (out, _) = open_term(&["--", server.to_str().unwrap()], calls);
    assert_eq!(
        out,
        "{#Port<0.N>, {:data, {:reply, 1, :ok}}}\n\
         {#Port<0.N>, {:data, {:reply, 2, {:ok, [1, 2.5]}}}}\n\
         {:EXIT, #Port<0.N>, :normal}\n"
    );
}

#[test]
fn a_packet_that_is_not_a_term_prints_as_data() {
    // printf writes a {packet, 4} frame whose body is not a term.
    let (out, err) = open_term(&["--spawn", "printf '\\0\\0\\0\\2hi'"], "");
    assert_eq!(out, "{#Port<0.N>, {:data, \"hi\"}}\n{:EXIT, #Port<0.N>, :normal}\n");
    assert_eq!(err, "beamport open: a packet that is not a term: at byte 0: the version byte is 104, not 131\n");
}

#[test]
fn term_echo_binary_echoes_terms_until_its_input_ends() {
    // `beamport-term-echo`, the bench's Rust port program: {packet, 4} in and out.
    use beamport::term;
    let terms = ["#{key => [1, 2.5, {tag, <<\"v\">>}]}", "ok", "[]"].map(|t| term::parse(t).unwrap());
    let mut input = Vec::new();
    for t in &terms {
        let bytes = term::encode(t).unwrap();
        input.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        input.extend_from_slice(&bytes);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_beamport-term-echo"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut rest = &out.stdout[..];
    for t in &terms {
        let (len, body) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        assert_eq!(&term::decode(&body[..len]).unwrap(), t);
        rest = &body[len..];
    }
    assert!(rest.is_empty());
}
