#!/usr/bin/env escript
%%! -noinput
%% The VM's side of the differential test of beamport's term codec:
%%   escript roundtrip.escript ECHO_PROGRAM COUNT SEED MAX_DEPTH
%% Opens ECHO_PROGRAM (examples/term_echo) with {packet, 4} and sends it COUNT random terms
%% of every kind (and a set of deep, long and large ones), each as term_to_binary with one
%% of its options (plain, compressed, minor versions 0 and 2). The echo decodes each and
%% encodes the decoded term back; every reply must be =:= the term sent. Then bytes that are
%% not terms must each get {error, {decode, Offset, Reason}}, and the echo must still work.
%% Prints "ok N" and exits 0, or prints the first term that differs and exits 1.
-mode(compile).

main([Exe, Count, Seed, MaxDepth]) ->
    rand:seed(exsss, list_to_integer(Seed)),
    Max = list_to_integer(MaxDepth),
    Port = open_port({spawn_executable, Exe}, [binary, {packet, 4}, exit_status]),
    Terms = fixed(Max) ++ [gen(rand:uniform(6)) || _ <- lists:seq(1, list_to_integer(Count))],
    lists:foreach(fun(T) -> check(Port, T) end, Terms),
    hostile(Port, Max),
    check(Port, done),
    port_close(Port),
    io:format("ok ~p~n", [length(Terms)]).

options() ->
    element(rand:uniform(5), {[], [compressed], [{compressed, 9}], [{minor_version, 0}], [{minor_version, 2}]}).

check(Port, T) ->
    Opts = options(),
    Bin = term_to_binary(T, Opts),
    true = port_command(Port, Bin),
    case reply(Port) of
        R when R =:= T -> ok;
        R -> differ(T, Opts, Bin, R)
    end.

reply(Port) ->
    receive
        {Port, {data, B}} -> binary_to_term(B);
        {Port, {exit_status, S}} -> {echo_exited, S}
    after 60000 -> echo_timeout
    end.

differ(T, Opts, Bin, R) ->
    io:format("the first term that differs (sent with ~p):~n  ~P~nsent as (first 200 bytes):~n  ~w~n"
              "came back as:~n  ~P~n",
              [Opts, T, 60, binary:part(Bin, 0, min(200, byte_size(Bin))), R, 60]),
    halt(1).

%% Bytes that are not terms: the echo answers {error, {decode, Offset, Reason}}.
hostile(Port, Max) ->
    Nest = fun(N) -> iolist_to_binary([131, lists:duplicate(N, [104, 1]), 106]) end,
    Bomb = <<131, 80, 16#7fffffff:32, (zlib:compress(<<106>>))/binary>>,
    Cases = [<<131, 108, 16#ffffffff:32, 106>>, <<131, 104, 2, 97, 1>>, <<131, 68>>, <<131, 82, 0>>,
             <<130, 106>>, <<>>, Nest(Max + 1), Nest(100000), Bomb,
             <<131, 116, 2:32, 106, 106, 106, 106>>, <<131, 77, 1:32, 0, 255>>,
             <<131, 119, 1, 233>>, <<131, 70, 16#7ff8000000000000:64>>,
             crypto_free_random(300)],
    lists:foreach(
        fun(B) ->
            true = port_command(Port, B),
            case reply(Port) of
                {error, {decode, Off, Why}} when is_integer(Off), Off >= 0, is_binary(Why) -> ok;
                R -> io:format("bytes that are not a term:~n  ~w~ngot:~n  ~P~n",
                               [binary:part(B, 0, min(64, byte_size(B))), R, 30]),
                     halt(1)
            end
        end, Cases),
    %% A deep term at the limit still comes back.
    Deep = lists:foldl(fun(_, A) -> {A} end, [], lists:seq(1, Max)),
    check(Port, Deep).

%% Random bytes after a version byte, that are not a term.
crypto_free_random(N) ->
    B = << <<(rand:uniform(256) - 1)>> || _ <- lists:seq(1, N) >>,
    case catch binary_to_term(<<131, 116, B/binary>>) of
        {'EXIT', _} -> <<131, 116, B/binary>>;
        _ -> <<131, 1>>
    end.

%% Terms the random ones rarely are: deep, long, large, and edge values.
fixed(Max) ->
    DeepList = lists:foldl(fun(_, A) -> [A, x] end, [], lists:seq(1, Max)),
    DeepMap = lists:foldl(fun(I, A) -> #{I => A} end, bottom, lists:seq(1, Max)),
    DeepMixed = lists:foldl(fun(I, A) -> case I rem 3 of 0 -> [A]; 1 -> {A, I}; 2 -> #{k => A} end end,
                            leaf, lists:seq(1, Max)),
    [ok, '', 'é', 'ü€日本', list_to_atom(lists:duplicate(255, $a)), list_to_atom(lists:duplicate(255, 16#20ac)),
     0, 255, 256, -1, 2147483647, -2147483648, 2147483648, -2147483649, 1 bsl 63, -(1 bsl 64),
     1 bsl 2040, -(1 bsl 2048), 1 bsl 100000,
     0.0, -0.0, 1.0, 0.1, 5.0e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.5e-300,
     <<>>, <<1, 2, 3>>, <<5:3>>, <<1, 2, 3:7>>, binary:copy(<<"x">>, 1 bsl 20),
     "", "abc", lists:seq(0, 255), lists:duplicate(70000, 7), [16#20ac, 16#1f600], [1 | 2], [a, b | c],
     {}, list_to_tuple(lists:seq(1, 300)), #{}, maps:from_list([{I, I} || I <- lists:seq(1, 100)]),
     self(), hd(erlang:ports()), make_ref(), fun lists:map/2, fun erlang:abs/1,
     closure({env, [1, 2]}), closure(<<"bin">>), external_pid(), external_port(), external_ref(),
     DeepList, DeepMap, DeepMixed].

gen(0) -> leaf();
gen(D) ->
    case rand:uniform(14) of
        N when N =< 5 -> leaf();
        6 -> list_to_tuple([gen(D - 1) || _ <- lists:seq(1, rand:uniform(4) - 1)]);
        7 -> [gen(D - 1) || _ <- lists:seq(1, rand:uniform(3))];
        8 -> [gen(D - 1) || _ <- lists:seq(1, rand:uniform(2))] ++ improper_tail();
        9 -> maps:from_list([{gen(D - 1), gen(D - 1)} || _ <- lists:seq(1, rand:uniform(3) - 1)]);
        10 -> maps:from_list([{I, leaf()} || I <- lists:seq(1, 33 + rand:uniform(20))]);
        11 -> closure(gen(D - 1));
        12 -> {tagged, gen(D - 1)};
        13 -> [{key(), gen(D - 1)} || _ <- lists:seq(1, rand:uniform(2))];
        14 -> #{key() => gen(D - 1), <<"b">> => leaf()}
    end.

improper_tail() ->
    element(rand:uniform(4), {leaf_atom, 42, <<"tail">>, {t}}).

key() -> list_to_atom([$a + rand:uniform(26) - 1 || _ <- lists:seq(1, rand:uniform(8))]).

leaf() ->
    case rand:uniform(22) of
        1 -> atom();
        2 -> atom();
        3 -> rand:uniform(256) - 1;
        4 -> rand:uniform(1 bsl 32) - (1 bsl 31);
        5 -> (rand:uniform(1 bsl 64) - (1 bsl 63)) * (1 bsl rand:uniform(64));
        6 -> (rand:uniform(1 bsl 64)) bsl rand:uniform(3000) * sign();
        7 -> float();
        8 -> float();
        9 -> binary(rand:uniform(40) - 1);
        10 -> case rand:uniform(30) of 1 -> binary(65536 + rand:uniform(1 bsl 20)); _ -> binary(rand:uniform(300)) end;
        11 -> B = binary(rand:uniform(10) - 1), <<B/binary, (rand:uniform(127)):(rand:uniform(7))>>;
        12 -> [];
        13 -> [rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(30))];
        14 -> [rand:uniform(16#10ffff) || _ <- lists:seq(1, rand:uniform(10))];
        15 -> element(rand:uniform(4), {self(), spawn(fun() -> ok end), external_pid(), list_to_pid("<0.1.0>")});
        16 -> element(rand:uniform(2), {hd(erlang:ports()), external_port()});
        17 -> element(rand:uniform(2), {make_ref(), external_ref()});
        18 -> element(rand:uniform(3), {fun lists:map/2, fun erlang:'+'/2, fun ?MODULE:leaf/0});
        19 -> element(rand:uniform(3), {true, false, undefined});
        20 -> Skip = rand:uniform(8), <<_:Skip, Sub/bitstring>> = binary(20), Sub;
        21 -> lists:duplicate(rand:uniform(5), rand:uniform(256) - 1);
        22 -> "hello world"
    end.

sign() -> element(rand:uniform(2), {1, -1}).

atom() ->
    Chars = {$a, $z, $_, $A, $0, $é, $ß, $Æ, 16#20ac, 16#65e5, 16#1f600, $\s, $', $"},
    case rand:uniform(20) of
        1 -> list_to_atom([element(rand:uniform(tuple_size(Chars)), Chars) || _ <- lists:seq(1, 255)]);
        _ -> list_to_atom([element(rand:uniform(tuple_size(Chars)), Chars) || _ <- lists:seq(1, rand:uniform(12) - 1)])
    end.

float() ->
    case rand:uniform(6) of
        1 -> element(rand:uniform(6), {0.0, -0.0, 5.0e-324, 1.7976931348623157e308, 1.0e16, 0.1});
        2 -> rand:uniform() * sign();
        3 -> <<F:64/float>> = <<(rand:uniform(16#7fe) - 1):12, (rand:uniform(1 bsl 52) - 1):52>>, F;
        _ -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(600) - 300)
    end.

binary(N) -> << <<(rand:uniform(256) - 1)>> || _ <- lists:seq(1, N) >>.

closure(Env) ->
    case rand:uniform(2) of
        1 -> fun() -> Env end;
        2 -> fun(X) -> {X, Env} end
    end.

%% A pid, port and reference of another node (as term_to_binary writes them).
external_pid() -> binary_to_term(<<131, 88, 119, 9, "other@box", 0:32, 17:32, 0:32, 3:32>>).
external_port() -> binary_to_term(<<131, 89, 119, 9, "other@box", 5:32, 3:32>>).
external_ref() -> binary_to_term(<<131, 90, 3:16, 119, 9, "other@box", 3:32, 1:32, 2:32, 3:32>>).
