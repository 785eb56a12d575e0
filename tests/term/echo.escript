#!/usr/bin/env escript
%%! -noinput
%% An Erlang-written port program, the mirror of examples/term_echo: reads {packet, 4}
%% packets on stdin, decodes each with binary_to_term, and writes term_to_binary of the
%% decoded term back on stdout. A packet that is not a term gets
%% {not_a_term, Class, Reason, Packet}. It ends when its input does.
-mode(compile).

main(_) ->
    Port = open_port({fd, 0, 1}, [binary, {packet, 4}, eof]),
    loop(Port).

loop(Port) ->
    receive
        {Port, {data, B}} ->
            Reply = try binary_to_term(B) catch C:R -> {not_a_term, C, R, B} end,
            port_command(Port, term_to_binary(Reply)),
            loop(Port);
        {Port, eof} ->
            halt(0)
    end.
