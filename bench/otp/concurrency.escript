#!/usr/bin/env escript
%%! +Q 65536
%% beamport bench, the Erlang VM side of `concurrency_5000`:
%%   escript concurrency.escript ROUNDS PORTS
%% Opens PORTS /bin/cat ports, sends each one 16-byte command, waits for every echo and
%% closes them all. Prints the total time in seconds, per round.
-mode(compile).

main([Rounds, Ports]) ->
    [run(list_to_integer(Ports)) || _ <- lists:seq(1, list_to_integer(Rounds))],
    ok.

run(N) ->
    Msg = <<"0123456789abcdef">>,
    T0 = erlang:monotonic_time(),
    Ports = [open_port({spawn_executable, "/bin/cat"}, [binary]) || _ <- lists:seq(1, N)],
    [true = port_command(P, Msg) || P <- Ports],
    ok = read(N * byte_size(Msg)),
    [port_close(P) || P <- Ports],
    Secs = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond) / 1.0e9,
    json(concurrency_5000, total, "s", Secs).

read(Left) when Left =< 0 -> ok;
read(Left) ->
    receive
        {_Port, {data, D}} -> read(Left - byte_size(D))
    after 30000 -> exit(timeout)
    end.

json(Workload, Metric, Unit, Value) ->
    io:format("{\"workload\":\"~s\",\"impl\":\"otp\",\"metric\":\"~s\",\"unit\":\"~s\",\"value\":~.6f}~n",
              [Workload, Metric, Unit, float(Value)]).
