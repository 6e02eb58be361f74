#!/usr/bin/env bash
# Boots systemd as PID 1 of new PID, mount, cgroup, UTS and IPC namespaces, with ROOT (an
# overlay of the cached root file system, test/system/rootfs.sh) as its root. Runs in the
# foreground until that systemd exits or is killed; test/system/harness.ts starts it, finds the
# container's PID 1 as this process's child, and enters it with nsenter.
#   boot.sh ROOT CGROUP_NAME
# CGROUP_NAME: a fresh cgroup created for this boot (and removed by the harness afterwards). systemd
# needs a cgroup tree it owns: on a cgroup v1 host (these machines), a named "systemd" hierarchy
# (and the "devices" controller, which DeviceAllow= uses), on a v2 host the unified hierarchy; in
# both cases mounted inside a cgroup namespace rooted at CGROUP_NAME.
# The network is the host's (as with systemd-nspawn without --private-network): the guest's
# `npm install -g` fetches dependencies like an operator's would. Nothing in the guest listens on
# the network; the agent's API is a Unix socket inside ROOT.
set -euo pipefail
root=$1
cg=$2
[ -x "$root/sbin/init" ] || { echo "boot.sh: $root/sbin/init is missing" >&2; exit 1; }

if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  cgmode=v2
  mkdir "/sys/fs/cgroup/$cg"
  echo $$ > "/sys/fs/cgroup/$cg/cgroup.procs"
else
  cgmode=v1
  [ -d /sys/fs/cgroup/systemd ] || { mkdir -p /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd; }
  for h in systemd devices; do
    mkdir "/sys/fs/cgroup/$h/$cg"
    echo $$ > "/sys/fs/cgroup/$h/$cg/cgroup.procs"
  done
  # A hybrid host also has the unified hierarchy: systemd uses it to track processes, so it gets
  # a cgroup of its own there too (else systemd would build its tree at the host's v2 root).
  if [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
    cgmode=hybrid
    mkdir "/sys/fs/cgroup/unified/$cg"
    echo $$ > "/sys/fs/cgroup/unified/$cg/cgroup.procs"
  fi
fi

# Everything below runs inside the new namespaces; the mounts vanish with them.
exec unshare --pid --mount --cgroup --uts --ipc --fork --propagation private bash -c '
set -euo pipefail
root=$1 cgmode=$2
mount --bind "$root" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
if [ "$cgmode" = v2 ]; then
  mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$root/sys/fs/cgroup"
else
  mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs "$root/sys/fs/cgroup"
  mkdir "$root/sys/fs/cgroup/systemd" "$root/sys/fs/cgroup/devices"
  mount -t cgroup -o none,name=systemd,nosuid,nodev,noexec cgroup "$root/sys/fs/cgroup/systemd"
  mount -t cgroup -o devices,nosuid,nodev,noexec cgroup "$root/sys/fs/cgroup/devices"
  if [ "$cgmode" = hybrid ]; then
    mkdir "$root/sys/fs/cgroup/unified"
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$root/sys/fs/cgroup/unified"
  fi
fi
# A private /dev with the usual pseudo devices (what systemd-nspawn gives a container).
mount -t tmpfs -o mode=755,nosuid tmpfs "$root/dev"
for d in null zero full random urandom tty; do
  touch "$root/dev/$d"
  mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
# pivot_root, not chroot: systemd makes "/" a shared mount and moves mounts across namespaces
# (credentials, PrivateTmp=), which needs "/" to be the root of this mount namespace. The old root
# ends up on top of the new one and is detached at once.
cd "$root"
pivot_root . .
umount -l .
cd /
# What a container manager does (systemd-nspawn too): systemd skips it in a container, and its
# units need it, e.g. credentials, which a helper mounts and moves across mount namespaces.
mount --make-rshared /
# container= tells systemd (and systemd-detect-virt) that it runs in a container.
exec /usr/bin/env -i container=cvm-agent-boot-test TERM=dumb /sbin/init
' boot "$root" "$cgmode"
