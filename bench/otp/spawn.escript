#!/usr/bin/env escript
%%! +Q 65536
%% beamport bench, the Erlang VM side of `spawn_seq` and `spawn_parN`:
%%   escript spawn.escript ROUNDS COUNT INFLIGHT
%% Opens COUNT ports on /bin/true with exit_status, keeping at most INFLIGHT running, and
%% waits for every exit status. Prints spawns per second, per round; the workload is
%% spawn_seq when INFLIGHT is 1, spawn_parINFLIGHT otherwise.
-mode(compile).

main([Rounds, Count, InFlight]) ->
    [run(list_to_integer(Count), list_to_integer(InFlight))
     || _ <- lists:seq(1, list_to_integer(Rounds))],
    ok.

run(Count, InFlight) ->
    T0 = erlang:monotonic_time(),
    First = min(Count, InFlight),
    [open() || _ <- lists:seq(1, First)],
    wait(First, Count - First),
    Secs = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond) / 1.0e9,
    Workload = case InFlight of
                   1 -> "spawn_seq";
                   _ -> "spawn_par" ++ integer_to_list(InFlight)
               end,
    json(Workload, rate, "per_s", Count / Secs).

open() -> open_port({spawn_executable, "/bin/true"}, [exit_status]).

%% Waits for Running exit statuses, opening a new port after each while ToStart > 0.
wait(0, _) -> ok;
wait(Running, ToStart) ->
    receive
        {_Port, {exit_status, _}} when ToStart > 0 ->
            open(),
            wait(Running, ToStart - 1);
        {_Port, {exit_status, _}} ->
            wait(Running - 1, 0)
    after 30000 -> exit(timeout)
    end.

json(Workload, Metric, Unit, Value) ->
    io:format("{\"workload\":\"~s\",\"impl\":\"otp\",\"metric\":\"~s\",\"unit\":\"~s\",\"value\":~.6f}~n",
              [Workload, Metric, Unit, float(Value)]).
