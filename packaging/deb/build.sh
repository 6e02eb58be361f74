#!/usr/bin/env bash
# Builds the cvm-agent Debian package (npm run package:deb). Self-contained: its own Node runtime
# (the node that runs this script, copied to /usr/lib/cvm-agent/node), the package as `npm pack`
# makes it (dist/, the prebuilt addon in prebuilds/), production dependencies only, the launcher
# /usr/bin/cvm-agent, and the units and sysusers.d/tmpfiles.d/udev files that systemd/install.sh
# installs. Maintainer scripts: postinst, prerm, postrm beside this file. docs/systemd.md describes
# the package and how to build it for a release.
set -euo pipefail
umask 022

usage() {
  cat <<'USAGE'
Usage: npm run package:deb -- [--version VERSION] [--out DIR] [--compress xz|gzip|zstd|none]
Exit status: 0 built, 1 failed, 2 bad arguments.

Builds DIR/cvm-agent_VERSION_ARCH.deb (default DIR: dist-pkg/) from this checkout, which must
have the addon built (npm run build:native); npm pack builds dist/ and prebuilds/ on the way.
  --version VERSION  Debian version (default: package.json's version, revision 1: 0.1.0-1)
  --out DIR          where the .deb goes
  --compress KIND    dpkg-deb compression (default xz)
The bundled Node is the one running this script: use Node 20 (>= 20.19).
Environment: CVM_AGENT_DEB_MAINTAINER sets the Maintainer field.
USAGE
}

die() { printf 'package:deb: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'package:deb: %s (see --help)\n' "$*" >&2; exit 2; }

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$(pwd -P)
here="$repo/packaging/deb"

version=""
out="$repo/dist-pkg"
compress=xz
while [ $# -gt 0 ]; do
  case "$1" in
    --version) [ $# -ge 2 ] && [ -n "$2" ] || usage_error "--version needs a value"; version=$2; shift 2 ;;
    --out) [ $# -ge 2 ] && [ -n "$2" ] || usage_error "--out needs a directory"; out=$2; shift 2 ;;
    --compress) [ $# -ge 2 ] || usage_error "--compress needs a value"; compress=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
case "$compress" in xz|gzip|zstd|none) ;; *) usage_error "--compress: xz, gzip, zstd or none" ;; esac

for tool in dpkg-deb dpkg-shlibdeps npm node; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (dpkg-deb, dpkg-shlibdeps: Debian package dpkg-dev)"
done

pkg_version=$(node -p 'require("./package.json").version')
[ -n "$version" ] || version="$pkg_version-1"
# Debian policy 5.6.12: upstream version starts with a digit; [A-Za-z0-9.+~-] only.
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$ ]] || usage_error "--version $version is not a Debian version"

node_bin=$(node -p 'process.execPath')
node_version=$(node -p 'process.versions.node')
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
  || die "the bundled runtime would be Node $node_version: run this with Node >= 20.19 (engines in package.json)"
arch=$(dpkg --print-architecture)
[ -f build/Release/cvm_native.node ] || die "build/Release/cvm_native.node is missing: run npm run build:native first"

work=$(mktemp -d "${TMPDIR:-/tmp}/cvm-agent-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
app="$root/usr/lib/cvm-agent"
mkdir -p "$app" "$root/DEBIAN" "$out"

# 1. The package exactly as `npm pack` makes it (prepack: build:ts, prebuilds/).
echo "package:deb: npm pack" >&2
tgz=$(npm pack --silent --pack-destination "$work" | tail -n 1)
tar -xzf "$work/$tgz" -C "$app" --strip-components=1 --no-same-owner
[ -f "$app/dist/cli/main.js" ] || die "npm pack produced no dist/"
ls "$app/prebuilds/"*/*.node >/dev/null 2>&1 || die "npm pack produced no prebuilds/"

# 2. Production dependencies at the locked versions, no scripts (the addon is prebuilt).
echo "package:deb: npm ci --omit=dev" >&2
cp package-lock.json "$app/"
(cd "$app" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >&2)
rm -f "$app/package-lock.json"

# 3. The runtime beside the code, and a launcher that uses it (never the system's node, which is
#    18 or missing on the images this targets).
cp "$node_bin" "$app/node"
chmod 0755 "$app/node"
mkdir -p "$root/usr/bin"
cat > "$root/usr/bin/cvm-agent" <<'LAUNCHER'
#!/bin/sh
# cvm-agent (Debian package): the agent on its bundled Node runtime. exec keeps the PID, so under
# systemd the agent itself is the main process (NotifyAccess=main, signals, watchdog).
exec /usr/lib/cvm-agent/node /usr/lib/cvm-agent/bin/cvm-agent.js "$@"
LAUNCHER
chmod 0755 "$root/usr/bin/cvm-agent"

# 4. Units, sysusers.d, tmpfiles.d, udev rule, docs: the same files, in the same places, as install.sh.
bash "$app/systemd/install.sh" --prefix "$root" --no-package >/dev/null
doc="$root/usr/share/doc/cvm-agent"
mkdir -p "$doc"
cat > "$doc/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cvm-agent

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.

Files: usr/lib/cvm-agent/node
License: MIT and others
 The bundled Node.js runtime; its license, with those of the libraries it contains, is in
 /usr/share/doc/cvm-agent/node-LICENSE when the build machine had it.

Files: usr/lib/cvm-agent/node_modules/*
License: various (MIT, Apache-2.0, ISC, BSD); see each module's LICENSE file
COPYRIGHT
for lic in "$(dirname "$node_bin")/../share/doc/node/LICENSE" /usr/share/doc/nodejs/LICENSE; do
  if [ -f "$lic" ]; then cp "$lic" "$doc/node-LICENSE"; break; fi
done

# 5. Control data. Shared library dependencies of the runtime and the addon from dpkg-shlibdeps
#    (it reads debian/control, so give it a minimal one).
mkdir -p "$work/debian"
printf 'Source: cvm-agent\n\nPackage: cvm-agent\nArchitecture: any\n' > "$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O -e"root/usr/lib/cvm-agent/node" -e"$(cd "$work" && ls root/usr/lib/cvm-agent/prebuilds/*/*.node | head -n 1)" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies for the runtime"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: cvm-agent
Version: $version
Architecture: $arch
Maintainer: ${CVM_AGENT_DEB_MAINTAINER:-cvm-agent maintainers <cvm-agent@localhost>}
Section: admin
Priority: optional
Installed-Size: $installed_size
Depends: systemd, $shlibs
Description: in-guest attestation agent for confidential VMs
 Attests AMD SEV-SNP CPUs (bare or Azure vTPM) and NVIDIA H100/Blackwell GPUs in
 confidential computing mode, gates the GPUs' ready state on the result, and
 answers workloads on /run/cvm-agent/api.sock. Runs as the hardened systemd
 service cvm-agent.service with socket activation. Bundles its own Node.js
 $node_version runtime in /usr/lib/cvm-agent.
CONTROL
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"

deb="$out/cvm-agent_${version}_${arch}.deb"
echo "package:deb: dpkg-deb --build ($compress)" >&2
dpkg-deb --root-owner-group -Z"$compress" --build "$root" "$deb" >&2
printf '%s\n' "$deb"
