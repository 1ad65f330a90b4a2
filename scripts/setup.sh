#!/usr/bin/env bash
# Installs what building and testing spanprobe needs, idempotently: each step checks first,
# so a machine that already has everything passes through in about a second.
# Checks read a command's whole output before grep looks at it: `cmd | grep -q` under
# pipefail fails when grep exits first and `cmd` dies of SIGPIPE, which made CI rebuild
# bpf-linker and then refuse it.
set -euo pipefail
cd "$(dirname "$0")/.."

# The toolchains are pinned in rust-toolchain.toml (the workspace) and ebpf/rust-toolchain.toml
# (the eBPF programs' nightly, by date).
toolchain_of() { sed -nE 's/^channel *= *"([^"]+)".*/\1/p' "$1"; }
STABLE=$(toolchain_of rust-toolchain.toml)
NIGHTLY=$(toolchain_of ebpf/rust-toolchain.toml)
BPF_LINKER_VERSION=0.13.0
# sqlite3 (and its libsqlite3) is a real library the attach tests probe by the hundred.
# python3-venv: the trace-context test runs a Python program instrumented with the
# OpenTelemetry SDK, installed from PyPI into a virtual environment (below).
# python3.11-dbg, libc6-dbg: Debian's separate debug files (DWARF and the full .symtab) of
# /usr/bin/python3.11 and libc.so.6, which the member-path and debug-file tests read.
# postgresql-15, systemtap-sdt-dev: USDT probes, a real server's and our own (sys/sdt.h).
# golang-go: real Go programs (Go 1.19, register ABI), built by the tests.
# restic, age: Debian's stripped cgo Go programs (PIE, externally linked), probed by the names
# in their .gopclntab; strace counts how often `check` opens a binary (tests/gobinaries.rs).
# qemu-system-x86, busybox-static, xz-utils: the kernel matrix (tests/kernels.rs) boots other
# kernels under QEMU with an initramfs whose shell and tools are a static busybox;
# scripts/kernels.sh decompresses the 6.12 kernel's modules (.ko.xz) with xz.
# libuv1-dev: libuv's thread pool, a real library whose work handoffs the tests trace.
APT_PACKAGES=(gcc g++ make pkg-config docker-compose sqlite3 python3-venv python3.11-dbg
  libc6-dbg postgresql-15 systemtap-sdt-dev golang-go restic age strace qemu-system-x86
  busybox-static xz-utils curl libxml2-utils libuv1-dev)

log() { printf 'setup: %s\n' "$*" >&2; }

missing_apt=()
for p in "${APT_PACKAGES[@]}" ${SPANPROBE_EXTRA_APT:-}; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == *'install ok installed'* ]] || missing_apt+=("$p")
done
if [ ${#missing_apt[@]} -gt 0 ]; then
  log "apt-get install ${missing_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing_apt[@]}" >/dev/null
fi

# toolchain COMPONENT...: installs the toolchain and its components unless already there.
install_toolchain() {
  local toolchain=$1; shift
  if ! grep -q "^${toolchain}-" <<<"$(rustup toolchain list)"; then
    log "rustup toolchain install $toolchain"
    rustup toolchain install "$toolchain" --profile minimal
  fi
  local installed
  installed=$(rustup component list --toolchain "$toolchain" --installed 2>/dev/null)
  for component in "$@"; do
    if ! grep -q "^$component" <<<"$installed"; then
      log "rustup component add $component --toolchain $toolchain"
      rustup component add "$component" --toolchain "$toolchain"
    fi
  done
}
install_toolchain "$STABLE" clippy rustfmt
install_toolchain "$NIGHTLY" rust-src

# bpf-linker must link against the nightly's own LLVM (Debian has no LLVM new enough).
sysroot=$(rustc +"$NIGHTLY" --print sysroot)
libllvm=$(compgen -G "$sysroot/lib/libLLVM.so.*" | sed -n 1p || true)
[ -n "$libllvm" ] || { log "no libLLVM in $sysroot/lib"; exit 1; }
llvm_major=$(basename "$libllvm" | sed -E 's/^libLLVM\.so\.([0-9]+).*/\1/')
linker_ok() {
  command -v bpf-linker >/dev/null &&
    grep -q "$BPF_LINKER_VERSION" <<<"$(bpf-linker --version 2>/dev/null)" &&
    grep -qF "$libllvm" <<<"$(ldd "$(command -v bpf-linker)")"
}
if ! linker_ok; then
  log "building bpf-linker $BPF_LINKER_VERSION against $(basename "$libllvm")"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  ln -s "$libllvm" "$tmp/libLLVM.so"
  LLVM_PREFIX="$sysroot" RUSTFLAGS="-L native=$tmp" \
    cargo +"$STABLE" install --locked --force "bpf-linker@$BPF_LINKER_VERSION" \
    --no-default-features --features "llvm-$llvm_major"
  linker_ok || { log "bpf-linker does not link the nightly's LLVM after install"; exit 1; }
fi

# The OpenTelemetry Python SDK, pinned, for the test that joins a real application's trace
# (tests/context.rs finds it at this path).
OTEL_PYTHON_VERSION=1.45.2
venv=target/otel-python
otel_python_ok() {
  [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "import opentelemetry.version as v, opentelemetry.exporter.otlp.proto.http; assert v.__version__ == '$OTEL_PYTHON_VERSION'" 2>/dev/null
}
if ! otel_python_ok; then
  log "installing opentelemetry-sdk $OTEL_PYTHON_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "opentelemetry-sdk==$OTEL_PYTHON_VERSION" \
    "opentelemetry-exporter-otlp-proto-http==$OTEL_PYTHON_VERSION"
  otel_python_ok || { log "the OpenTelemetry SDK does not import after install"; exit 1; }
fi

# tracefs: a traced command's own probes (the default with a command) are tracefs uprobe events;
# some machines boot without it mounted, and spanprobe would fall back to probes in every process.
if ! mountpoint -q /sys/kernel/tracing; then
  log "mount -t tracefs nodev /sys/kernel/tracing"
  mount -t tracefs nodev /sys/kernel/tracing
fi

# kubernetes-validate, pinned: it bundles the Kubernetes API's JSON schemas for each release it
# knows, so tests/deploy.rs checks examples/kubernetes/ against them offline (strict: unknown
# fields are errors). PyYAML, its own dependency, pinned too: the test reads the manifests with it.
K8S_VALIDATE_VERSION=1.37.0
PYYAML_VERSION=6.0.4
k8s_venv=target/kubernetes-validate
k8s_validate_ok() {
  [ -x "$k8s_venv/bin/kubernetes-validate" ] &&
    grep -qx "$K8S_VALIDATE_VERSION" <<<"$("$k8s_venv/bin/kubernetes-validate" --version 2>/dev/null)" &&
    "$k8s_venv/bin/python" -c "import yaml; assert yaml.__version__ == '$PYYAML_VERSION'" 2>/dev/null
}
if ! k8s_validate_ok; then
  log "installing kubernetes-validate $K8S_VALIDATE_VERSION into $k8s_venv"
  python3 -m venv "$k8s_venv"
  "$k8s_venv/bin/pip" install -q --disable-pip-version-check \
    "kubernetes-validate==$K8S_VALIDATE_VERSION" "PyYAML==$PYYAML_VERSION"
  k8s_validate_ok || { log "kubernetes-validate does not run after install"; exit 1; }
fi
