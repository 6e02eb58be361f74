#!/usr/bin/env bash
# Builds, once, the minimal Debian 12 root file system that test/system/boot.test.ts boots systemd in,
# and prints its path. Cached: the directory name carries a hash of this script, so a change to the
# package list or the suite builds a new one, and an unchanged script reuses the old one.
# Needs root and debootstrap (Debian package), and reaches the Debian archive through the mirror that
# apt uses on this machine. About 150 MB, a minute or a few.
#   rootfs.sh           build it unless cached; print its path
#   rootfs.sh --check   print its path if it is cached, else exit 3 (builds nothing)
set -euo pipefail
umask 022

readonly SUITE=bookworm
readonly MIRROR="${CVM_AGENT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# systemd + systemd-sysv: PID 1 and its tools; dbus: systemctl/journalctl talk to PID 1 over it for
# some verbs (systemd-analyze security of a loaded unit); sudo: the documented commands are run as
# written. Deliberately NOT procps (no /bin/kill), no udev, no node: the units and the package must
# not depend on them (the npm layout's test brings Node and npm itself, as an operator would).
readonly INCLUDE=systemd,systemd-sysv,dbus,sudo
readonly CACHE_DIR="${CVM_AGENT_CI_CACHE:-/var/cache/cvm-agent-ci}"

self_hash=$( { cat "${BASH_SOURCE[0]}"; printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE"; } | sha256sum | cut -c1-16)
rootfs="$CACHE_DIR/rootfs-$SUITE-$self_hash"

if [ -f "$rootfs/.complete" ]; then
  printf '%s\n' "$rootfs"
  exit 0
fi
if [ "${1:-}" = --check ]; then
  echo "rootfs.sh: $rootfs is not built (run test/system/rootfs.sh as root)" >&2
  exit 3
fi

[ "$(id -u)" -eq 0 ] || { echo "rootfs.sh: needs root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "rootfs.sh: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }

mkdir -p "$CACHE_DIR"
# One builder at a time; a second caller waits and then finds the finished tree.
exec 9>"$CACHE_DIR/.lock"
flock 9
if [ -f "$rootfs/.complete" ]; then printf '%s\n' "$rootfs"; exit 0; fi

work="$rootfs.partial"
rm -rf "$work"
echo "rootfs.sh: debootstrap $SUITE into $work (minbase + $INCLUDE)" >&2
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$work" "$MIRROR" >&2
# Keep the cache small and the tree reproducible enough: no downloaded .debs, no apt lists.
rm -rf "$work/var/cache/apt/archives/"*.deb "$work/var/lib/apt/lists/"*
# Empty: every boot gets a fresh, transient machine id instead of one baked into the cache.
: > "$work/etc/machine-id"
# Trees of other versions of this script are left alone: another checkout may be booting one right
# now (it is an overlay's lower layer). Reclaim the space with rm -rf /var/cache/cvm-agent-ci/rootfs-*
# when no test runs.
touch "$work/.complete"
mv "$work" "$rootfs"
printf '%s\n' "$rootfs"
