#!/usr/bin/env escript
%%! -noinput
%% beamport bench, `term_roundtrip`: the Erlang-written echo, the VM's counterpart of
%% `beamport bench --term-echo` (the loop of examples/term_echo). Reads {packet, 4} packets
%% on stdin, decodes each with binary_to_term and writes term_to_binary of the decoded term
%% on stdout, until its input ends.
-mode(compile).

main(_) ->
    Port = open_port({fd, 0, 1}, [binary, {packet, 4}, eof]),
    loop(Port).

loop(Port) ->
    receive
        {Port, {data, B}} ->
            port_command(Port, term_to_binary(binary_to_term(B))),
            loop(Port);
        {Port, eof} ->
            halt(0)
    end.
