#!/usr/bin/env escript
%%! +Q 65536
%% beamport bench, the Erlang VM side of `throughput`:
%%   escript throughput.escript ROUNDS BYTES CHUNK
%% Pushes BYTES through /bin/cat in CHUNK-byte binary commands: a writer process calls
%% port_command/2 while the owner counts the bytes that come back. One JSON line per round.
-mode(compile).

main([Rounds, Bytes, Chunk]) ->
    [run(list_to_integer(Bytes), list_to_integer(Chunk))
     || _ <- lists:seq(1, list_to_integer(Rounds))],
    ok.

run(Bytes, Chunk) ->
    Port = open_port({spawn_executable, "/bin/cat"}, [binary]),
    Data = binary:copy(<<"x">>, Chunk),
    N = Bytes div Chunk,
    T0 = erlang:monotonic_time(),
    spawn_link(fun() -> write(Port, Data, N) end),
    ok = read(Port, N * Chunk),
    Secs = seconds(erlang:monotonic_time() - T0),
    port_close(Port),
    json(throughput, throughput, "MB/s", N * Chunk / Secs / 1.0e6).

write(_Port, _Data, 0) -> ok;
write(Port, Data, N) ->
    true = port_command(Port, Data),
    write(Port, Data, N - 1).

read(_Port, Left) when Left =< 0 -> ok;
read(Port, Left) ->
    receive
        {Port, {data, D}} -> read(Port, Left - byte_size(D))
    after 30000 -> exit(timeout)
    end.

seconds(Native) -> erlang:convert_time_unit(Native, native, nanosecond) / 1.0e9.

json(Workload, Metric, Unit, Value) ->
    io:format("{\"workload\":\"~s\",\"impl\":\"otp\",\"metric\":\"~s\",\"unit\":\"~s\",\"value\":~.6f}~n",
              [Workload, Metric, Unit, float(Value)]).
