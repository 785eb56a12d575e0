#!/usr/bin/env bash
# Stress test of the no-orphan guarantee (not run in CI: it takes minutes).
#
#   scripts/orphan-stress.sh [TRIALS [CASES]]    (default: 1000 trials of each of "c e")
#
# Each trial starts examples/host.rs with a port on a process tree that tries every escape
# (background child, setsid child, double fork, SIGTERM-ignoring processes), then, at a
# random moment:
#   (c) SIGKILLs the host, sometimes before its port is even open;
#   (e) SIGKILLs the host and its launcher together, in a random order.
# It then polls /proc for up to 5 s until no process of the tree (found by a unique
# BEAMPORT_MARK in its environment) is left, and counts the survivors, which it then kills.
#
# The tier is the strongest the machine offers; set BEAMPORT_NO_NAMESPACE=1 (and
# BEAMPORT_NO_CGROUP=1) to stress the weaker ones ((e) cannot hold there).
# Exit status: 0 if nothing survived, 1 otherwise.
set -u
cd "$(dirname "$0")/.."

TRIALS=${1:-1000}
cargo build --quiet -p beamport --example host || exit 2
HOST=target/debug/examples/host
TREE='sleep 1001 & setsid sleep 1002 & (sleep 1003 &); (trap "" TERM; exec sleep 1005) & trap "" TERM; exec sleep 1004'

work=$(mktemp -d)
trap 'exec 3>&-; rm -rf "$work"' EXIT
# Hosts read their stdin until EOF; a FIFO held open read-write here never gives them one.
mkfifo "$work/hold"
exec 3<>"$work/hold"

# Pids of live processes marked with $1.
marked() {
    grep -lzsxF "BEAMPORT_MARK=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
}

# Waits (at most 5 s) until nothing marked $1 is left; prints the survivors' command lines
# and kills them.
survivors() {
    local m=$1 left deadline=$((SECONDS + 5))
    while :; do
        left=$(marked "$m")
        # A process caught in the middle of an exec may not show its environment: nothing
        # left means nothing seen on two scans in a row.
        [ -z "$left" ] && { sleep 0.05; left=$(marked "$m"); }
        [ -z "$left" ] && return 0
        [ $SECONDS -ge $deadline ] && break
        sleep 0.02
    done
    for p in $left; do
        echo "    survivor $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null || echo '(ended just after the deadline)')"
        kill -9 "$p" 2>/dev/null
    done
    return 1
}

# Waits (at most 5 s) until file $1 has a line starting with $2; prints its value.
field() {
    local deadline=$((SECONDS + 5)) v
    while [ $SECONDS -lt $deadline ]; do
        v=$(sed -n "s/^$2 //p" "$1" 2>/dev/null)
        [ -n "$v" ] && { echo "$v"; return 0; }
        sleep 0.002
    done
    return 1
}

# A random pause of 0 to 29 ms.
pause() {
    sleep "0.0$(printf %02d $((RANDOM % 30)))"
}

run_case() {
    local case=$1 bad=0 count=0 i m out hp lp tier=""
    for ((i = 1; i <= TRIALS; i++)); do
        m="stress-$$-$case-$i-$RANDOM"
        out="$work/out"
        : >"$out"
        "$HOST" env "BEAMPORT_MARK=$m" sh -c "$TREE" <&3 >"$out" 2>/dev/null &
        hp=$!
        case $case in
        c)
            # Half the trials kill the host at once, maybe before its launcher exists.
            if ((RANDOM % 2)); then field "$out" child >/dev/null; fi
            pause
            kill -9 "$hp" 2>/dev/null
            ;;
        e)
            lp=$(field "$out" launcher) || { echo "  trial $i: the host printed nothing"; kill -9 "$hp"; }
            pause
            case $((RANDOM % 3)) in
            0) kill -9 "$hp" "$lp" 2>/dev/null ;;
            1) kill -9 "$lp" 2>/dev/null; kill -9 "$hp" 2>/dev/null ;;
            2) kill -9 "$hp" 2>/dev/null; kill -9 "$lp" 2>/dev/null ;;
            esac
            ;;
        esac
        [ -z "$tier" ] && tier=$(sed -n 's/^tier //p' "$out")
        wait "$hp" 2>/dev/null
        local left n
        left=$(survivors "$m")
        if [ -n "$left" ]; then
            n=$(grep -c survivor <<<"$left")
            bad=$((bad + 1))
            count=$((count + n))
            echo "  trial $i of ($case): $n survivor(s)" >&2
            echo "$left" >&2
        fi
    done
    echo "($case) ${tier:-unknown tier}: $TRIALS trials, $bad with survivors, $count survivors in all"
    [ $bad -eq 0 ]
}

status=0
for c in ${2:-c e}; do
    run_case "$c" || status=1
done
exit $status
