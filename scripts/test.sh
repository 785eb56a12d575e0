#!/usr/bin/env bash
# The whole test run, from a fresh clone: installs what it needs, then format, lint and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

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
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo build --examples
cargo test --all-targets
cargo test --doc
