#!/usr/bin/env bash
# Prepares the kernels the kernel-matrix tests boot under QEMU (tests/kernels.rs through
# tests/support/vm.rs): the newest Debian 12 cloud kernel of each series below, downloaded by
# package name with apt and cached under target/kernels/. Prints the release (`uname -r`) of
# each prepared kernel, one a line on stdout, in the order of SERIES; logs go to stderr.
#
# Layout, per release:
#   target/kernels/<release>/vmlinuz         the kernel QEMU boots (-kernel)
#   target/kernels/<release>/config          its build configuration
#   target/kernels/<release>/modules/*.ko    the modules the guest loads, uncompressed
#   target/kernels/<release>/modules.order   their file names, in the order to load them
#   target/kernels/<release>/package         "<package> <version>", written last: a release
#                                            directory without it is incomplete
#   target/kernels/debs/*.deb                the downloaded packages, kept so that a
#                                            re-extraction costs no download
# Idempotent: when the newest package of a series is the one already prepared, nothing is
# downloaded or extracted, and the whole run costs two apt-cache look-ups (about a second).
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/.."

# The kernels of the matrix, as package-name patterns. 6.1 is Debian 12's own kernel (no
# uprobe_multi links: spanprobe falls back to perf-event uprobes); 6.12 is the LTS kernel
# Debian 12 backports (uprobe_multi links, no private BPF stacks). The "cloud" flavour boots
# fast and has what the tests need built in (BTF, uprobes, BPF JIT); "unsigned" is the same
# kernel without the Secure Boot signature, which QEMU has no use for.
SERIES=(
  '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$'
  '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$'
)
# The guest reaches the host through a virtio-net device: the drivers it needs when they are
# modules (CONFIG_...=m) rather than built in. Their dependencies are found from the modules
# themselves (there is no modules.dep in the package: depmod makes it at install time).
NEEDED_DRIVERS=(CONFIG_VIRTIO_PCI:virtio_pci CONFIG_VIRTIO_NET:virtio_net)

KERNELS=target/kernels
DEBS=$KERNELS/debs

log() { printf 'kernels: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# refresh WHY: apt's lists are missing, or older than the mirror (which keeps only the newest
# kernels): apt-get update, then start over, once.
refresh() {
  [ -z "${KERNELS_REFRESHED:-}" ] || die "$1, even after apt-get update"
  log "$1: apt-get update, then again"
  apt-get update -qq >&2
  KERNELS_REFRESHED=1 exec "$self"
}

mkdir -p "$DEBS"
# Two test processes preparing at once would extract into the same directories.
exec 9>"$KERNELS/.lock"
flock 9
# Extractions left half done (this run failed, or an earlier one was killed): nobody else
# extracts while the lock is held.
trap 'rm -rf "$KERNELS"/.extract.*' EXIT
rm -rf "$KERNELS"/.extract.*

# module_depends FILE: the modules FILE needs, from its .modinfo section ("depends=a,b").
module_depends() {
  local reader=cat
  [[ $1 == *.xz ]] && reader='xz -dc'
  $reader "$1" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' '\n' | sed '/^$/d'
}

# module_file TREE NAME: the file of module NAME under TREE (a name's `-` and `_` are
# interchangeable, as modprobe treats them).
module_file() {
  local want=${2//-/_} file base
  while IFS= read -r file; do
    base=$(basename "$file")
    base=${base%%.ko*}
    if [ "${base//-/_}" = "$want" ]; then
      printf '%s\n' "$file"
      return
    fi
  done <<<"$(find "$1" -name '*.ko*')"
  return 1
}

# add_module TREE NAME: appends NAME's dependencies, then NAME, to LOAD_ORDER, each once.
add_module() {
  local name=${2//-/_} file dep
  [[ " ${LOAD_ORDER[*]} " == *" $name "* ]] && return
  file=$(module_file "$1" "$name") || die "module $name not in the package"
  while IFS= read -r dep; do
    [ -n "$dep" ] && add_module "$1" "$dep"
  done <<<"$(module_depends "$file")"
  LOAD_ORDER+=("$name")
  MODULE_FILES[$name]=$file
}

# prepare PACKAGE VERSION RELEASE: downloads and extracts PACKAGE into $KERNELS/RELEASE.
prepare() {
  local package=$1 version=$2 release=$3
  local deb
  deb=$(compgen -G "$DEBS/${package}_${version//:/%3a}_*.deb" | sed -n 1p || true)
  if [ -z "$deb" ]; then
    log "downloading $package $version"
    # As root, apt downloads as the _apt user unless told otherwise, which cannot write here.
    (cd "$DEBS" && apt-get download -q -o APT::Sandbox::User=root "$package=$version" >&2) ||
      refresh "cannot download $package $version"
    deb=$(compgen -G "$DEBS/${package}_${version//:/%3a}_*.deb" | sed -n 1p || true)
    [ -n "$deb" ] || die "apt-get download $package=$version left no .deb in $DEBS"
  fi
  log "extracting $release from $(basename "$deb")"
  local tmp
  tmp=$(mktemp -d "$KERNELS/.extract.XXXXXX")
  dpkg-deb -x "$deb" "$tmp/deb"
  local out=$tmp/out
  mkdir -p "$out/modules"
  [ -f "$tmp/deb/boot/vmlinuz-$release" ] || die "$deb has no boot/vmlinuz-$release"
  cp "$tmp/deb/boot/vmlinuz-$release" "$out/vmlinuz"
  cp "$tmp/deb/boot/config-$release" "$out/config"

  LOAD_ORDER=()
  declare -gA MODULE_FILES=()
  local entry option module setting
  for entry in "${NEEDED_DRIVERS[@]}"; do
    option=${entry%%:*}
    module=${entry#*:}
    setting=$(sed -n "s/^$option=//p" "$out/config")
    case $setting in
      y) ;;
      m) add_module "$tmp/deb/lib/modules/$release" "$module" ;;
      *) die "$release is built without $option: the guest would have no network" ;;
    esac
  done
  for module in "${LOAD_ORDER[@]}"; do
    local file=${MODULE_FILES[$module]}
    # Uncompressed, so that busybox's insmod needs no decompressor.
    case $file in
      *.ko.xz) xz -dc "$file" >"$out/modules/$module.ko" ;;
      *.ko) cp "$file" "$out/modules/$module.ko" ;;
      *) die "unexpected module file $file" ;;
    esac
    printf '%s.ko\n' "$module" >>"$out/modules.order"
  done
  touch "$out/modules.order"
  printf '%s %s\n' "$package" "$version" >"$out/package"

  rm -rf "${KERNELS:?}/$release"
  mv "$out" "$KERNELS/$release"
  rm -rf "$tmp"
}

# apt-cache loads its whole cache on every call (about half a second): one call lists the
# names, one gives the versions.
names=$(apt-cache pkgnames linux-image-)
packages=()
for pattern in "${SERIES[@]}"; do
  package=$(grep -E "$pattern" <<<"$names" | sort -V | tail -n 1)
  [ -n "$package" ] || refresh "no package matches $pattern"
  packages+=("$package")
done
declare -A VERSIONS=()
while read -r field value; do
  case $field in
    Package:) package=$value ;;
    Version:) VERSIONS[$package]=$value ;;
  esac
done <<<"$(apt-cache show --no-all-versions "${packages[@]}")"

prepared=()
for package in "${packages[@]}"; do
  version=${VERSIONS[$package]:-}
  [ -n "$version" ] || die "apt-cache knows no version of $package"
  release=${package#linux-image-}
  release=${release%-unsigned}
  if [ "$(cat "$KERNELS/$release/package" 2>/dev/null || true)" != "$package $version" ]; then
    prepare "$package" "$version" "$release"
  fi
  prepared+=("$release")
done

# What an earlier run prepared and a newer package has replaced.
for dir in "$KERNELS"/*/; do
  release=$(basename "$dir")
  [ "$release" = debs ] && continue
  if [[ " ${prepared[*]} " != *" $release "* ]]; then
    log "removing $release, replaced"
    rm -rf "${KERNELS:?}/$release"
  fi
done
for deb in "$DEBS"/*.deb; do
  [ -e "$deb" ] || continue
  keep=false
  for release in "${prepared[@]}"; do
    read -r package version <"$KERNELS/$release/package"
    [[ $(basename "$deb") == "${package}_${version//:/%3a}_"* ]] && keep=true
  done
  $keep || { log "removing $(basename "$deb"), replaced"; rm -f "$deb"; }
done

printf '%s\n' "${prepared[@]}"
