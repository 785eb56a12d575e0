#!/usr/bin/env escript
%%! +Q 65536
%% beamport bench, the Erlang VM side of `memory_per_port`:
%%   escript memory.escript ROUNDS PORTS
%% erlang:memory(total) before and after opening PORTS /bin/cat ports, divided by PORTS:
%% the VM's own memory per open port (the figure beamport's memory target is set against). Per round.
-mode(compile).

main([Rounds, Ports]) ->
    [run(list_to_integer(Ports)) || _ <- lists:seq(1, list_to_integer(Rounds))],
    ok.

run(N) ->
    garbage_collect(),
    Before = erlang:memory(total),
    Ports = [open_port({spawn_executable, "/bin/cat"}, [binary]) || _ <- lists:seq(1, N)],
    garbage_collect(),
    After = erlang:memory(total),
    json(memory_per_port, memory, "bytes", (After - Before) / N),
    [port_close(P) || P <- Ports],
    ok.

json(Workload, Metric, Unit, Value) ->
    io:format("{\"workload\":\"~s\",\"impl\":\"otp\",\"metric\":\"~s\",\"unit\":\"~s\",\"value\":~.6f}~n",
              [Workload, Metric, Unit, float(Value)]).
