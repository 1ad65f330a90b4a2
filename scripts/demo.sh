#!/usr/bin/env bash
# The README's first command: builds spanprobe and the demo, then traces the demo with the
# bundled config, printing one line per span. Extra arguments replace the demo's loop count.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --quiet
make --quiet -C examples/demo
exec ./target/release/spanprobe run --config examples/demo/demo.yaml -- examples/demo/demo "${@:-3}"
