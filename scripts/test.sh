#!/usr/bin/env bash
# The README's second command: the whole test suite, lints included. Needs root (the
# integration tests load real eBPF programs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all --check
# A one-off build gains nothing from incremental caches, which would double the target's size.
export CARGO_INCREMENTAL=0
# default-members: the eBPF crate only builds for the BPF target (the build script lints it).
cargo clippy --all-targets --quiet -- -D warnings
# Tests that need root skip without it (a contributor's laptop); here a skip is a failure: CI
# runs as root, and a run that lost it must not pass by skipping the kernel half.
SPANPROBE_TESTS_REQUIRE_ROOT=1 cargo test
