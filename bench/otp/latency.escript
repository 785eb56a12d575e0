#!/usr/bin/env escript
%%! +Q 65536
%% beamport bench, the Erlang VM side of `latency`:
%%   escript latency.escript ROUNDS TRIPS PAYLOAD ECHO_PROGRAM ECHO_ARGS...
%% Ping-pong with {packet, 4}: send a PAYLOAD-byte command, wait for the echo, TRIPS times
%% (after 200 warm-up trips). Prints the median and p99 round trip in µs, per round.
-mode(compile).

main([Rounds, Trips, Payload, Exe | Args]) ->
    [run(list_to_integer(Trips), list_to_integer(Payload), Exe, Args)
     || _ <- lists:seq(1, list_to_integer(Rounds))],
    ok.

run(Trips, Payload, Exe, Args) ->
    Port = open_port({spawn_executable, Exe}, [binary, {packet, 4}, {args, Args}]),
    Data = binary:copy(<<"p">>, Payload),
    _ = trips(Port, Data, 200, []),
    Times = lists:sort(trips(Port, Data, Trips, [])),
    port_close(Port),
    T = list_to_tuple(Times),
    Us = fun(Q) -> element(round(Q * (Trips - 1)) + 1, T) / 1000 end,
    json(latency, median, "us", Us(0.5)),
    json(latency, p99, "us", Us(0.99)).

%% Round trips in nanoseconds.
trips(_Port, _Data, 0, Acc) -> Acc;
trips(Port, Data, N, Acc) ->
    T0 = erlang:monotonic_time(),
    true = port_command(Port, Data),
    receive
        {Port, {data, _}} -> ok
    after 10000 -> exit(timeout)
    end,
    T = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond),
    trips(Port, Data, N - 1, [T | Acc]).

json(Workload, Metric, Unit, Value) ->
    io:format("{\"workload\":\"~s\",\"impl\":\"otp\",\"metric\":\"~s\",\"unit\":\"~s\",\"value\":~.6f}~n",
              [Workload, Metric, Unit, float(Value)]).
