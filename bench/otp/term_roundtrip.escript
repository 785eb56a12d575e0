#!/usr/bin/env escript
%%! +Q 65536
%% beamport bench, `term_roundtrip`: the VM is the host, and a port program echoes terms.
%%   escript term_roundtrip.escript ROUNDS MAP_TRIPS BINARY_TRIPS IMPL PROGRAM ARGS...
%% Opens PROGRAM with {packet, 4} and sends it, one at a time, term_to_binary of a 1 KB map
%% (MAP_TRIPS times) and of a 64 KB binary (BINARY_TRIPS times); the program decodes each
%% and sends the decoded term back encoded. After 200 warm-up trips, and a check that the
%% reply is the term sent, prints round trips per second for each, per round, as IMPL
%% (`beamport` for the Rust program, `otp` for the Erlang one).
-mode(compile).

main([Rounds, MapTrips, BinTrips, Impl, Exe | Args]) ->
    [run(list_to_integer(MapTrips), list_to_integer(BinTrips), Impl, Exe, Args)
     || _ <- lists:seq(1, list_to_integer(Rounds))],
    ok.

%% 43 keys: 1024 bytes as term_to_binary writes it.
map_1k() ->
    maps:from_list([{list_to_atom("key_" ++ integer_to_list(I)),
                     case I rem 3 of
                         0 -> I * 1000003;
                         1 -> <<"value ", (integer_to_binary(I))/binary>>;
                         2 -> [I, I / 3, {tag, I}]
                     end} || I <- lists:seq(1, 43)]).

run(MapTrips, BinTrips, Impl, Exe, Args) ->
    Port = open_port({spawn_executable, Exe}, [binary, {packet, 4}, {args, Args}]),
    Binary = << <<(I rem 251)>> || I <- lists:seq(1, 65536) >>,
    [begin
         Bin = term_to_binary(T),
         true = port_command(Port, Bin),
         receive {Port, {data, Reply}} -> T = binary_to_term(Reply)
         after 60000 -> exit({no_reply, Metric})
         end,
         _ = trips(Port, Bin, 200),
         T0 = erlang:monotonic_time(),
         trips(Port, Bin, N),
         Us = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond),
         json(Impl, Metric, N * 1000000 / max(Us, 1))
     end || {Metric, T, N} <- [{map_1k, map_1k(), MapTrips}, {binary_64k, Binary, BinTrips}]],
    port_close(Port).

trips(_Port, _Bin, 0) -> ok;
trips(Port, Bin, N) ->
    true = port_command(Port, Bin),
    receive
        {Port, {data, _}} -> ok
    after 60000 -> exit(timeout)
    end,
    trips(Port, Bin, N - 1).

json(Impl, Metric, Value) ->
    io:format("{\"workload\":\"term_roundtrip\",\"impl\":\"~s\",\"metric\":\"~s\",\"unit\":\"per_s\",\"value\":~.6f}~n",
              [Impl, Metric, float(Value)]).
