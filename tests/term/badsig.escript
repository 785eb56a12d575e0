#!/usr/bin/env escript
%%! -noinput
%% What the VM does with each message of `cases/2` sent to a `cat` port ({packet, 4}, which
%% `cat` echoes packet by packet) by its owner (which
%% traps exits): one line per case, `NAME: EVENTS`, where EVENTS are the messages the owner
%% got, in order ("exit badsig", "data abc", "closed", "connected"), then "logged" if the VM
%% logged "Bad value on output port 'cat'". The test runs the same cases through
%% `Port::send_term` and compares the lines.
-mode(compile).
-export([log/2]).

main(_) ->
    process_flag(trap_exit, true),
    ok = logger:remove_handler(default),
    ok = logger:add_handler(capture, ?MODULE, #{config => self()}),
    [run(Name) || Name <- names()],
    ok.

names() ->
    [hello, cmd_atom, cmd_iolist, cmd_improper_iolist, cmd_negative, cmd_256, cmd_bits,
     cmd_extra, close_tuple, connect_atom, other_cmd, other_cmd_atom, other_close, atom_close,
     close, connect_other].

cases(Self, Other) ->
    #{hello => hello,
      cmd_atom => {Self, {command, foo}},
      cmd_iolist => {Self, {command, [<<"a">>, "b", [99, []]]}},
      cmd_improper_iolist => {Self, {command, [$a, <<"b">> | <<"c">>]}},
      cmd_negative => {Self, {command, [-1]}},
      cmd_256 => {Self, {command, [256]}},
      cmd_bits => {Self, {command, <<1, 2, 1:3>>}},
      cmd_extra => {Self, {command, <<"x">>, extra}},
      close_tuple => {Self, {close}},
      connect_atom => {Self, {connect, foo}},
      other_cmd => {Other, {command, <<"x">>}},
      other_cmd_atom => {Other, {command, foo}},
      other_close => {Other, close},
      atom_close => {foo, close},
      close => {Self, close},
      connect_other => {Self, {connect, Other}}}.

run(Name) ->
    Other = spawn(fun() -> receive stop -> ok end end),
    Port = open_port({spawn, "cat"}, [binary, {packet, 4}]),
    Port ! maps:get(Name, cases(self(), Other)),
    Events = case Name of
                 close -> until(Port, closed, []);
                 connect_other -> until(Port, connected, []);
                 _ -> Port ! {self(), {command, <<"sync">>}}, until(Port, {data, <<"sync">>}, [])
             end,
    %% The VM's report went to the logger before the port echoed "sync": a call to the
    %% logger returns after our handler has seen it.
    _ = sys:get_state(logger),
    Logged = receive {logged, _} -> ["logged"] after 0 -> [] end,
    io:format("~s: ~s~n", [Name, lists:join(", ", Events ++ Logged)]),
    catch port_close(Port),
    Other ! stop,
    receive {'EXIT', Port, _} -> ok after 1000 -> ok end.

until(Port, Last, Acc) ->
    receive
        {Port, Last} -> lists:reverse(Acc);
        {Port, {data, D}} -> until(Port, Last, ["data " ++ binary_to_list(D) | Acc]);
        {Port, closed} -> until(Port, Last, ["closed" | Acc]);
        {Port, connected} -> until(Port, Last, ["connected" | Acc]);
        {'EXIT', Port, R} -> until(Port, Last, ["exit " ++ atom_to_list(R) | Acc])
    after 5000 -> lists:reverse(["timeout" | Acc])
    end.

%% The logger handler: tells the owner about the VM's report.
log(#{msg := Msg}, #{config := Owner}) ->
    Text = case Msg of
               {string, S} -> unicode:characters_to_list(S);
               {report, R} -> lists:flatten(io_lib:format("~p", [R]));
               {Format, Args} -> lists:flatten(io_lib:format(Format, Args))
           end,
    case string:find(Text, "Bad value on output port 'cat'") of
        nomatch -> ok;
        _ -> Owner ! {logged, Text}
    end;
log(_, _) ->
    ok.
