#!/bin/sh
# Copies the locally built addon into prebuilds/<platform>-<arch>/, where node-gyp-build finds it in
# an installed package that has no build/ directory (npm pack's tarball, the .deb). The name tags it
# as Node-API (any Node >= the N-API version it was built for) and glibc, so a musl system builds
# from source instead of loading it. Run by `npm pack` (prepack) and packaging/deb/build.sh.
set -eu
cd "$(dirname "$0")/.."
src=build/Release/cvm_native.node
[ -f "$src" ] || { echo "prebuild: $src is missing: run npm run build:native first" >&2; exit 1; }
tuple=$(node -p 'process.platform + "-" + process.arch')
dir="prebuilds/$tuple"
rm -rf prebuilds
mkdir -p "$dir"
cp "$src" "$dir/node.napi.glibc.node"
# The copy must be what node-gyp-build resolves for this machine, with no build/ beside it.
PREBUILDS_ONLY=1 node -e 'const p = require("node-gyp-build").resolve("."); if (!p.includes("/prebuilds/")) { throw new Error("resolved " + p); } require(p);' \
  || { echo "prebuild: node-gyp-build does not load $dir/node.napi.glibc.node" >&2; exit 1; }
echo "prebuild: $dir/node.napi.glibc.node"
