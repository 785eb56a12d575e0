#!/usr/bin/env escript
%%! -noinput
%% Prints COUNT random floats, one a line: its 64 bits in hex, a space, and how iex prints
%% it (io_lib_format:fwrite_g/1, which Elixir's Inspect uses).
%%   escript floats.escript COUNT SEED
-mode(compile).

main([Count, Seed]) ->
    rand:seed(exsss, list_to_integer(Seed)),
    Fixed = [0.0, -0.0, 1.0, 0.1, 100.0, 1.0e15, 1.0e16, 9007199254740992.0, 9007199254740991.0,
             123456789012345680.0, 0.001, 0.0001, 1.0e-5, 5.0e-324, 1.7976931348623157e308],
    Random = [random() || _ <- lists:seq(1, list_to_integer(Count))],
    [io:format("~16.16.0b ~s~n", [Bits, io_lib_format:fwrite_g(F)]) || F <- Fixed ++ Random,
                                                                        <<Bits:64>> <- [<<F:64/float>>]].

random() ->
    case rand:uniform(3) of
        1 -> <<F:64/float>> = <<(rand:uniform(2) - 1):1, (rand:uniform(16#7fe) - 1):11, (rand:uniform(1 bsl 52) - 1):52>>, F;
        2 -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(40) - 20);
        3 -> float(rand:uniform(1 bsl 60)) / element(rand:uniform(4), {1, 10, 1000, 7})
    end.
