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
  echo "== cargo test, every child forked by the launcher (BEAMPORT_NO_DIRECT=1)"
  BEAMPORT_NO_DIRECT=1 cargo test --test port_semantics --test fast_paths --test elixir_docs --test no_orphans \
    --test leaks --test direct_spawn --test flow_control --test emfile --test framing_ports
fi
cargo test --workspace --doc
