#!/usr/bin/env bash
# Installs (or removes) cvm-agent as a systemd service. Idempotent: running it twice gives the same
# result. docs/systemd.md describes the files and the unit; `install.sh --help` the options.
set -euo pipefail
# The service user reads the package; never inherit a restrictive umask from root's shell.
umask 022

readonly NAME=cvm-agent
readonly OPT_DIR=/opt/cvm-agent
readonly BIN_LINK=/usr/bin/cvm-agent
readonly UNIT_DIR=/usr/lib/systemd/system
readonly SYSUSERS_FILE=/usr/lib/sysusers.d/cvm-agent.conf
readonly TMPFILES_FILE=/usr/lib/tmpfiles.d/cvm-agent.conf
readonly UDEV_FILE=/usr/lib/udev/rules.d/60-cvm-agent.rules
readonly DOC_FILE=/usr/share/doc/cvm-agent/systemd.md
# Where systemd, when it runs as PID 1, keeps its runtime state (the sd_booted() test). Tests point
# it elsewhere to see what a dry run would do on a systemd host.
readonly SYSTEMD_RUNDIR="${CVM_AGENT_SYSTEMD_RUNDIR:-/run/systemd/system}"
# Where udevd keeps its control socket; without it (no udev, or a container) the rules are only
# installed, and take effect when udev next starts.
readonly UDEV_RUNDIR="${CVM_AGENT_UDEV_RUNDIR:-/run/udev}"
# What a copy of the package holds: the "files" of package.json (what `npm pack` puts in the tarball,
# and so what `npm install -g` installs) plus package.json and the production node_modules. The unit
# test checks that this list and package.json agree.
readonly PACKAGE_FILES=(bin dist prebuilds systemd docs binding.gyp build-info.json native/src README.md)

usage() {
  cat <<'EOF'
Usage: install.sh [--prefix DIR] [--no-package] [--dry-run] [--uninstall] [--help]
Exit status: 0 done, 1 failed, 2 bad arguments.

Installs cvm-agent as a systemd service:
  - the package: used in place when it was installed with `npm install -g` (it then sits in
    .../lib/node_modules/cvm-agent) and only root can change it, otherwise copied to
    /opt/cvm-agent (the same files as the npm install: package.json "files" + node_modules)
  - /usr/bin/cvm-agent -> <package>/bin/cvm-agent.js
  - /usr/lib/systemd/system/cvm-agent.{service,socket}
  - /usr/lib/sysusers.d/cvm-agent.conf, /usr/lib/tmpfiles.d/cvm-agent.conf
  - /usr/lib/udev/rules.d/60-cvm-agent.rules, /usr/share/doc/cvm-agent/systemd.md
Then, when systemd runs as PID 1 and DIR is /: systemd-sysusers, systemd-tmpfiles --create,
udevadm control --reload + trigger (when udevd runs), systemctl daemon-reload. It never enables
or starts the units.

A package used in place is refused when it, anything in it, or any directory above it is not
owned by root or is writable by group or others (a root-owned sticky directory such as /tmp
excepted): the service would run code that someone else can change.

Options:
  --prefix DIR   install below DIR instead of / (staging an image or a package); nothing is
                 activated then, and links point to the final paths (without DIR)
  --no-package   install the units and the sysusers/tmpfiles/udev files only: the package and
                 /usr/bin/cvm-agent come from elsewhere (the .deb, see docs/systemd.md)
  --dry-run      print what would be done, change nothing
  --uninstall    stop and disable the units and remove the installed files; keeps the user,
                 /etc/cvm-agent, /var/lib/cvm-agent and /var/cache/cvm-agent
  --help         show this help

Install from a tarball (npm pack builds dist/ and prebuilds/):
  npm install -g ./cvm-agent-VERSION.tgz && "$(npm root -g)/cvm-agent/systemd/install.sh"
or from a checkout: npm ci && npm run build && npm prune --omit=dev && systemd/install.sh
EOF
}

die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install.sh: %s (see --help)\n' "$*" >&2; exit 2; }
note() { printf '%s\n' "$*"; }

prefix=/
dry_run=0
action=install
with_package=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix)
      if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "--prefix needs a directory"; fi
      prefix=$2; shift 2 ;;
    --prefix=*)
      prefix=${1#--prefix=}; [ -n "$prefix" ] || usage_error "--prefix needs a directory"; shift ;;
    --dry-run) dry_run=1; shift ;;
    --no-package) with_package=0; shift ;;
    --uninstall) action=uninstall; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

# Normalise DIR: absolute, no trailing slash ("/" stays "/").
case "$prefix" in
  /*) ;;
  *) prefix="$(pwd)/$prefix" ;;
esac
prefix=${prefix%/}
root_mode=0
if [ -z "$prefix" ]; then root_mode=1; fi

# Path below DIR for a final system path.
dest() { printf '%s%s' "$prefix" "$1"; }

# Runs a command, or prints it under --dry-run. Every change goes through here.
run() {
  if [ "$dry_run" -eq 1 ]; then
    printf 'would run:'; printf ' %q' "$@"; printf '\n'
  else
    printf '+'; printf ' %q' "$@"; printf '\n'
    "$@"
  fi
}

# The package this script belongs to: <package>/systemd/install.sh.
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
src_pkg=$(cd "$script_dir/.." && pwd -P)

systemd_is_pid1() { [ -d "$SYSTEMD_RUNDIR" ]; }
udevd_is_running() { command -v udevadm >/dev/null 2>&1 && [ -e "$UDEV_RUNDIR/control" ]; }

# Activation only makes sense on the live system this script runs on.
can_activate() {
  if [ "$root_mode" -ne 1 ]; then
    note "skip: activation (--prefix $prefix is not /)"
    return 1
  fi
  if ! systemd_is_pid1; then
    note "skip: activation (systemd is not PID 1 here: $SYSTEMD_RUNDIR is missing)"
    return 1
  fi
  return 0
}

# Only remove a package directory that really holds cvm-agent.
is_cvm_agent_package() {
  [ -f "$1/package.json" ] && grep -Eq '"name"[[:space:]]*:[[:space:]]*"cvm-agent"' "$1/package.json"
}

# node-gyp-build's name for this machine's prebuilds/ directory (process.platform-process.arch).
node_tuple() {
  case "$(uname -m)" in
    x86_64) echo linux-x64 ;;
    aarch64) echo linux-arm64 ;;
    *) echo "linux-$(uname -m)" ;;
  esac
}

# The addon as the installed package carries it: prebuilds/ from `npm pack`, or a local build.
addon_source() {
  local f
  for f in "$src_pkg/prebuilds/$(node_tuple)"/*.node; do
    if [ -f "$f" ]; then printf '%s\n' "$f"; return 0; fi
  done
  if [ -f "$src_pkg/build/Release/cvm_native.node" ]; then
    printf '%s\n' "$src_pkg/build/Release/cvm_native.node"; return 0
  fi
  return 1
}

check_source_package() {
  is_cvm_agent_package "$src_pkg" || die "$src_pkg is not the cvm-agent package (no package.json named cvm-agent)"
  [ -f "$src_pkg/bin/cvm-agent.js" ] || die "$src_pkg/bin/cvm-agent.js is missing"
  [ -f "$src_pkg/dist/cli/main.js" ] || die "$src_pkg/dist is not built: run npm run build first"
  check_unit_files
  if ! addon_source >/dev/null; then
    note "warning: no native addon (prebuilds/$(node_tuple)/*.node or build/Release/cvm_native.node): device access (SNP, NVML, sd_notify) will be unavailable"
  fi
  if [ ! -d "$src_pkg/node_modules" ]; then
    note "warning: $src_pkg/node_modules is missing: run npm ci --omit=dev (or npm prune --omit=dev) first"
  fi
  if ! command -v node >/dev/null 2>&1; then
    note "warning: node is not on PATH: the unit runs /usr/bin/cvm-agent through '#!/usr/bin/env node' (Node >= 20.19)"
  fi
}

check_unit_files() {
  local f
  for f in cvm-agent.service cvm-agent.socket cvm-agent.sysusers cvm-agent.tmpfiles 60-cvm-agent.rules; do
    [ -f "$script_dir/$f" ] || die "$script_dir/$f is missing"
  done
}

# The service runs the package's code, and install.sh runs as root: a package used in place must be
# changeable by root only. Refuses (exit 1) when the package directory, anything in it, or any
# directory above it is not owned by root or is writable by group or others. A root-owned sticky
# directory above it (/tmp) is accepted: others cannot rename or remove root's entries there.
# Symbolic links in the package must stay inside it (npm's .bin links do).
check_root_only() { # package-dir
  local dir=$1 p mode uid bad target
  p=$dir
  while :; do
    read -r mode uid < <(stat -c '%a %u' -- "$p") || die "cannot stat $p"
    if [ "$uid" -ne 0 ]; then
      die "refusing to use $dir in place: $p is owned by uid $uid, not root (reinstall it as root)"
    fi
    if [ $((8#$mode & 8#022)) -ne 0 ] && { [ "$p" = "$dir" ] || [ $((8#$mode & 8#1000)) -eq 0 ]; }; then
      die "refusing to use $dir in place: $p is writable by group or others (mode $mode; chmod go-w it)"
    fi
    [ "$p" = / ] && break
    p=$(dirname -- "$p")
  done
  bad=$(find "$dir" ! -uid 0 -print -quit)
  [ -z "$bad" ] || die "refusing to use $dir in place: $bad is not owned by root (reinstall the package as root)"
  bad=$(find "$dir" ! -type l -perm /022 -print -quit)
  [ -z "$bad" ] || die "refusing to use $dir in place: $bad is writable by group or others (reinstall with umask 022, or chmod -R go-w $dir)"
  while IFS= read -r -d '' p; do
    target=$(readlink -f -- "$p" || true)
    case "$target" in
      "$dir"/*) ;;
      *) die "refusing to use $dir in place: $p links outside the package (to ${target:-nothing})" ;;
    esac
  done < <(find "$dir" -type l -print0)
}

# npm -g puts packages in <npm prefix>/lib/node_modules/<name>: use that copy where it is, unless
# it is below /home or /root (an nvm prefix, say), which ProtectHome=yes hides from the service.
package_in_place() {
  [ "$(basename "$(dirname "$src_pkg")")" = node_modules ] || return 1
  case "$src_pkg" in
    /home/*|/root/*)
      note "note: $src_pkg is hidden from the service by ProtectHome=yes: copying it instead"
      return 1 ;;
  esac
  return 0
}

install_package() {
  if [ "$src_pkg" = "$(dest "$OPT_DIR")" ]; then
    check_root_only "$src_pkg"
    pkg_final=$OPT_DIR
    note "package: using $src_pkg in place (already installed there)"
    return
  fi
  if package_in_place; then
    check_root_only "$src_pkg"
    pkg_final=$src_pkg
    note "package: using $src_pkg in place (npm global install)"
    return
  fi
  pkg_final=$OPT_DIR
  local target staging old
  target=$(dest "$OPT_DIR")
  staging="$target.new"
  old="$target.old"
  note "package: copying $src_pkg to $target"
  run rm -rf "$staging" "$old"
  run mkdir -p "$staging"
  local item addon
  run cp "$src_pkg/package.json" "$staging/"
  for item in "${PACKAGE_FILES[@]}" node_modules; do
    # prebuilds: below, exactly the one addon for this machine.
    [ "$item" != prebuilds ] || continue
    if [ -e "$src_pkg/$item" ]; then
      run mkdir -p "$(dirname "$staging/$item")"
      # -L: node_modules may be a link to a shared tree (a git worktree); the copy holds the files.
      run cp -RL "$src_pkg/$item" "$staging/$item"
    fi
  done
  # The addon goes where `npm pack` puts it, so both layouts load it the same way (no build/ needed).
  if addon=$(addon_source); then
    run mkdir -p "$staging/prebuilds/$(node_tuple)"
    run cp "$addon" "$staging/prebuilds/$(node_tuple)/node.napi.glibc.node"
  fi
  run chmod 0755 "$staging/bin/cvm-agent.js"
  # Swap in the new tree so a failed copy never leaves a half-installed package behind.
  if [ -e "$target" ]; then
    is_cvm_agent_package "$target" || die "$target exists and is not a cvm-agent package: refusing to replace it"
    run mv "$target" "$old"
  fi
  run mv "$staging" "$target"
  run rm -rf "$old"
}

install_file() { # mode source final-path
  run install -D -m "$1" "$2" "$(dest "$3")"
}

do_install() {
  if [ "$root_mode" -eq 1 ] && [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "installing to / needs root (or use --prefix DIR / --dry-run)"
  fi
  if [ "$with_package" -eq 1 ]; then
    check_source_package
    install_package
    run mkdir -p "$(dest "$(dirname "$BIN_LINK")")"
    run ln -sfn "$pkg_final/bin/cvm-agent.js" "$(dest "$BIN_LINK")"
  else
    check_unit_files
    note "package: not installed (--no-package)"
  fi
  install_file 0644 "$script_dir/cvm-agent.service" "$UNIT_DIR/cvm-agent.service"
  install_file 0644 "$script_dir/cvm-agent.socket" "$UNIT_DIR/cvm-agent.socket"
  install_file 0644 "$script_dir/cvm-agent.sysusers" "$SYSUSERS_FILE"
  install_file 0644 "$script_dir/cvm-agent.tmpfiles" "$TMPFILES_FILE"
  install_file 0644 "$script_dir/60-cvm-agent.rules" "$UDEV_FILE"
  if [ -f "$src_pkg/docs/systemd.md" ]; then
    install_file 0644 "$src_pkg/docs/systemd.md" "$DOC_FILE"
  fi

  if can_activate; then
    run systemd-sysusers "$SYSUSERS_FILE"
    run systemd-tmpfiles --create "$TMPFILES_FILE"
    if udevd_is_running; then
      run udevadm control --reload
      run udevadm trigger --action=change --subsystem-match=misc --sysname-match=sev-guest
      run udevadm trigger --action=change --subsystem-match=tpmrm
    else
      note "skip: udev (udevd is not running: $UDEV_RUNDIR/control is missing); the rule applies when it starts"
    fi
    run systemctl daemon-reload
  fi
  note "next: put the controller token in /etc/cvm-agent/controller-token (root:root 0600) if you use one,"
  note "      then: systemctl enable cvm-agent.socket cvm-agent.service && systemctl start cvm-agent.socket"
}

remove_path() { # final-path
  local p
  p=$(dest "$1")
  if [ -e "$p" ] || [ -L "$p" ]; then
    run rm -f "$p"
  fi
}

do_uninstall() {
  if [ "$root_mode" -eq 1 ] && [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "uninstalling from / needs root (or use --prefix DIR / --dry-run)"
  fi
  if can_activate; then
    # Stopping may fail when the units were never loaded; removal goes on regardless.
    run systemctl disable --now cvm-agent.service cvm-agent.socket || true
  fi
  # The link goes only when it points into a cvm-agent package.
  local link
  link=$(dest "$BIN_LINK")
  if [ -L "$link" ]; then
    case "$(readlink "$link")" in
      */bin/cvm-agent.js) run rm -f "$link" ;;
      *) note "keep: $link (does not point to a cvm-agent package)" ;;
    esac
  fi
  remove_path "$UNIT_DIR/cvm-agent.service"
  remove_path "$UNIT_DIR/cvm-agent.socket"
  remove_path "$SYSUSERS_FILE"
  remove_path "$TMPFILES_FILE"
  remove_path "$UDEV_FILE"
  remove_path "$DOC_FILE"
  local docdir
  docdir=$(dest "$(dirname "$DOC_FILE")")
  if [ -d "$docdir" ]; then
    run rmdir --ignore-fail-on-non-empty "$docdir"
  fi
  local opt
  opt=$(dest "$OPT_DIR")
  if [ -d "$opt" ] && [ "$opt" != "$src_pkg" ]; then
    is_cvm_agent_package "$opt" || die "$opt is not a cvm-agent package: refusing to remove it"
    run rm -rf "$opt"
  elif [ "$opt" = "$src_pkg" ]; then
    note "keep: $opt (this script runs from it; remove it by hand)"
  fi
  if can_activate; then
    if udevd_is_running; then run udevadm control --reload; fi
    run systemctl daemon-reload
  fi
  note "kept: user/groups cvm-agent, cvm-agent-tee; /etc/${NAME}, /var/lib/${NAME}, /var/cache/${NAME}"
}

if [ "$dry_run" -eq 1 ]; then note "dry run: nothing will be changed"; fi
if [ "$action" = install ]; then do_install; else do_uninstall; fi
