#!/usr/bin/env bash
# The whole test run, from a fresh clone: installs what it needs, then format, lint and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# A passing run prints no failure-like line: tests that make a program fail on purpose read
# its stderr and check it; the slow ones (many_ports) say what they wait for.
echo "== tools: erl, rustfmt, clippy"
# The real Erlang VM: the reference for beamport's semantics and for `beamport run` tests.
if ! command -v erl >/dev/null 2>&1; then
  echo "== installing erlang-base (erl, escript)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq erlang-base >/dev/null
fi
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test (a few minutes)"
cargo build --workspace --examples
cargo test --workspace --all-targets
# Where the host may fork port programs itself (root, PID-namespace tier), the suites above
# took that path; the launcher forks for everyone else. These run it too.
doctor=$(cargo run -q --bin beamport -- doctor)
if [[ "$doctor" == *"by the opening thread"* ]]; then
  echo "== cargo test, every child forked by the launcher (BEAMPORT_SPAWNING=launcher)"
  BEAMPORT_SPAWNING=launcher cargo test --test port_semantics --test fast_paths --test elixir_docs --test no_orphans \
    --test leaks --test opener_fork --test flow_control --test emfile --test framing_ports
fi
cargo test --workspace --doc

# ---- As an unprivileged user --------------------------------------------------------------
# Most users are not root: their launcher takes the user+pid-namespace tier (a user namespace
# that maps their own uid) and forks every program itself. CI and developers run as root, so
# the suites that cover what a port program sees, the no-orphan guarantee, Elixir's Port docs
# and the command line run once more as a user made for it. The repository and its target
# directory may be root's alone: the test binaries, the examples they start and the beamport
# binary are copied to a directory that user can read, in the layout the tests expect.
unpriv_suites=(port_semantics no_orphans elixir_docs cli self_view closing busy_limits opener_fork)
# The user's opener forks its programs (through a hop into the launcher's user namespace);
# these run again with every program forked by the launcher, as past 64 running programs.
unpriv_launcher_suites=(port_semantics no_orphans self_view)
if [ "$(id -u)" != 0 ]; then
  echo "== (the suites above ran as uid $(id -u), not root: no unprivileged pass needed)"
else
  user=beamport-test
  if ! id -u "$user" >/dev/null 2>&1; then
    echo "== creating the user $user (useradd) for the unprivileged pass"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
  fi
  unpriv=$(mktemp -d /tmp/beamport-unprivileged.XXXXXX)
  trap 'rm -rf "$unpriv"' EXIT
  mkdir -p "$unpriv/debug/deps" "$unpriv/debug/examples"
  cargo build -q -p beamport --example host --example busy_host
  # Each suite's test binary, as cargo reports it.
  cargo test -q --no-run --message-format=json "${unpriv_suites[@]/#/--test=}" |
    grep '"kind":\["test"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' |
    while read -r exe; do cp "$exe" "$unpriv/debug/deps/"; done
  cp target/debug/examples/host target/debug/examples/busy_host "$unpriv/debug/examples/"
  cp target/debug/beamport "$unpriv/debug/"
  chmod -R a+rX "$unpriv"
  as_user() {
    (cd "$unpriv" && setpriv --reuid="$user" --regid="$user" --clear-groups --reset-env \
      env BEAMPORT_TEST_BIN="$unpriv/debug/beamport" BEAMPORT_TEST_PREBUILT=1 RUST_BACKTRACE=0 "$@")
  }
  tier=$(as_user "$unpriv/debug/beamport" doctor | sed -n 's/^active tier: *//p')
  echo "== as the unprivileged user $user (uid $(id -u "$user")), on the $tier tier: ${unpriv_suites[*]}"
  # Each suite's output is shown whole only if it fails; else its result and the notes on what
  # this tier cannot promise (the tests' expected panics and error messages stay in the log).
  run_as_user() { # SUITE [VAR=VALUE]
    local suite=$1 exe log
    exe=$(find "$unpriv/debug/deps" -maxdepth 1 -type f -name "$suite-*" | head -n 1)
    [ -n "$exe" ] || { echo "the test binary of $suite was not built" >&2; exit 1; }
    if ! log=$(as_user env ${2:+"$2"} "$exe" 2>&1); then
      printf '%s\n' "$log"
      echo "== FAILED as $user${2:+ with $2}: $suite" >&2
      exit 1
    fi
    printf '%s\n' "$log" | grep -E '^(NOTE|EXPECTED LIMITATION) ' | sed 's/^/   /' || true
    echo "   $suite: $(printf '%s\n' "$log" | grep '^test result:')"
  }
  for suite in "${unpriv_suites[@]}"; do
    run_as_user "$suite"
  done
  echo "== as $user, every child forked by the launcher (BEAMPORT_SPAWNING=launcher): ${unpriv_launcher_suites[*]}"
  for suite in "${unpriv_launcher_suites[@]}"; do
    run_as_user "$suite" BEAMPORT_SPAWNING=launcher
  done
fi
