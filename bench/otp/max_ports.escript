#!/usr/bin/env escript
%%! +Q 65536
%% beamport bench, the Erlang VM side of `max_ports`:
%%   escript max_ports.escript ROUNDS CAP
%% Opens /bin/cat ports until open_port/2 fails (or CAP are open), closes them all, and
%% prints how many opened and the error, per round.
-mode(compile).

main([Rounds, Cap]) ->
    [run(list_to_integer(Cap)) || _ <- lists:seq(1, list_to_integer(Rounds))],
    ok.

run(Cap) ->
    {N, Error, Ports} = open(Cap, 0, []),
    [port_close(P) || P <- Ports],
    io:format("{\"workload\":\"max_ports\",\"impl\":\"otp\",\"metric\":\"ports\",\"unit\":\"ports\","
              "\"value\":~b,\"error\":\"~s\"}~n", [N, Error]).

open(Cap, Cap, Acc) -> {Cap, "none", Acc};
open(Cap, N, Acc) ->
    try open_port({spawn_executable, "/bin/cat"}, [binary]) of
        P -> open(Cap, N + 1, [P | Acc])
    catch
        error:Reason when is_atom(Reason) -> {N, atom_to_list(Reason), Acc};
        error:Reason -> {N, io_lib:format("~p", [Reason]), Acc}
    end.
