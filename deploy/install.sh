#!/usr/bin/env bash
# Installs riskgate on a bare-metal or VM host running systemd, from a CMake build of this repo:
#   cmake -S . -B build && cmake --build build -j && sudo deploy/install.sh
# Checks the kernel first (BTF, cgroup v2, bpffs), installs the binaries, the unit, the agent
# settings and the default policy, then enables and starts riskgated.
#
#   --build-dir DIR  where riskgated and riskgatectl were built (default: <repo>/build)
#   --observe        first install only: the default policy in observe mode (decide and log only)
#   --no-start       install and enable, do not start
#   --prefix DIR     stage the files under DIR instead of / (packaging, tests); touches nothing
#                    outside DIR: no mount, no systemctl, and failed checks only warn
#   --dry-run        print every action, change nothing
#   --uninstall      stop and disable riskgated, run `riskgated --uninstall` (detaches every program,
#                    removes every pin, so every block is lifted), remove binaries and unit; keeps
#                    /etc/riskgate and the decision log in /var/log/riskgate (evidence)
#
# Settings and policies already in /etc/riskgate are never overwritten: re-running the script over
# a newer build is the upgrade (docs/operations.md, "Upgrade").
set -euo pipefail

args=("$@")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$repo/build
prefix=
dry_run=0
observe=0
start=1
uninstall=0

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; }
die() { echo "install.sh: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --build-dir) [[ $# -ge 2 ]] || die "--build-dir needs a directory"; build_dir=$2; shift 2 ;;
    --prefix) [[ $# -ge 2 ]] || die "--prefix needs a directory"; prefix=${2%/}; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --observe) observe=1; shift ;;
    --no-start) start=0; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

# The host is only changed for a real install into /.
live=1
[[ -n $prefix || $dry_run -eq 1 ]] && live=0

sbin=$prefix/usr/local/sbin
etc=$prefix/etc/riskgate
unit_dir=$prefix/etc/systemd/system
share=$prefix/usr/local/share/riskgate
doc=$prefix/usr/local/share/doc/riskgate

# run CMD...: runs it, or prints it under --dry-run.
run() {
  if [[ $dry_run -eq 1 ]]; then
    echo "would run: $*"
  else
    "$@"
  fi
}

# host CMD...: a command that changes the live system (systemctl, mount): skipped when staging.
host() {
  if [[ $live -eq 1 ]]; then
    "$@"
  else
    echo "would run on the host: $*"
  fi
}

# place MODE SRC DST: installs a file, replacing what is there.
place() {
  if [[ $dry_run -eq 1 ]]; then
    echo "would install: $3 (mode $1) from $2"
  else
    install -D -m "$1" "$2" "$3"
    echo "installed: $3"
  fi
}

# place_once MODE SRC DST: installs a file only where none exists (operator-owned settings).
place_once() {
  if [[ -e $3 ]]; then
    echo "kept: $3 (exists; not overwritten)"
  else
    place "$@"
  fi
}

# check NAME OK MESSAGE: a host requirement. Fatal on a real install, a warning when staging.
failed_checks=0
check() {
  if [[ $2 -eq 1 ]]; then
    echo "check: $1: ok"
  elif [[ $live -eq 1 ]]; then
    echo "check: $1: FAILED: $3" >&2
    failed_checks=$((failed_checks + 1))
  else
    echo "check: $1: warning (staging, not fatal): $3" >&2
  fi
}

host_checks() {
  local ok release major minor cgroup2 fstype
  release=$(uname -r)
  major=${release%%.*}
  minor=${release#*.}
  minor=${minor%%[!0-9]*}
  ok=0; (( major > 5 || (major == 5 && minor >= 15) )) && ok=1
  check "kernel >= 5.15" $ok "running $release; riskgate needs 5.15 or newer (sk_storage in sk_msg, CAP_BPF)"

  ok=0; [[ -r /sys/kernel/btf/vmlinux ]] && ok=1
  check "kernel BTF" $ok "/sys/kernel/btf/vmlinux is missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y (docs/operations.md, \"Missing BTF\")"

  cgroup2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
  ok=0; [[ -n $cgroup2 ]] && ok=1
  check "cgroup v2${cgroup2:+ at $cgroup2}" $ok "no cgroup2 mount in /proc/mounts (docs/operations.md, \"cgroup v1 hosts\")"

  fstype=$(stat -f -c %T /sys/fs/bpf 2>/dev/null || true)
  if [[ $fstype == bpf_fs ]]; then
    check "bpffs at /sys/fs/bpf" 1 ""
  elif [[ $live -eq 1 ]]; then
    echo "check: bpffs at /sys/fs/bpf: not mounted; mounting it (add to /etc/fstab: bpf /sys/fs/bpf bpf defaults 0 0)"
    mkdir -p /sys/fs/bpf
    mount -t bpf bpf /sys/fs/bpf || check "bpffs at /sys/fs/bpf" 0 "mount -t bpf failed"
  else
    check "bpffs at /sys/fs/bpf" 0 "not mounted (a real install mounts it)"
  fi

  ok=0; [[ -d /run/systemd/system ]] && ok=1
  check "systemd" $ok "systemd is not running: start /usr/local/sbin/riskgated --config /etc/riskgate/riskgate.yaml from your init system"

  [[ $failed_checks -eq 0 ]] || die "$failed_checks check(s) failed; nothing installed"
}

do_install() {
  local bin
  for bin in riskgated riskgatectl; do
    [[ -x $build_dir/$bin ]] || die "$build_dir/$bin not found: build first (cmake -S . -B build && cmake --build build -j), or pass --build-dir"
  done
  host_checks

  place 0755 "$build_dir/riskgated" "$sbin/riskgated"
  place 0755 "$build_dir/riskgatectl" "$sbin/riskgatectl"
  place 0644 "$repo/deploy/systemd/riskgated.service" "$unit_dir/riskgated.service"
  place_once 0644 "$repo/deploy/systemd/riskgate.yaml" "$etc/riskgate.yaml"

  # Only the default policy goes live; the worked examples would define listeners and identities
  # of their own, so they are installed beside it for reference.
  local policy=$etc/policies/default.yaml
  if [[ $observe -eq 1 && ! -e $policy ]]; then
    if [[ $dry_run -eq 1 ]]; then
      echo "would install: $policy (mode 0644) from $repo/policies/default.yaml with mode: observe"
    else
      install -d -m 0755 "$etc/policies"
      sed 's/^  mode: enforce$/  mode: observe/' "$repo/policies/default.yaml" > "$policy"
      chmod 0644 "$policy"
      echo "installed: $policy (mode: observe)"
    fi
  else
    place_once 0644 "$repo/policies/default.yaml" "$policy"
  fi
  local f
  for f in "$repo"/policies/*.yaml; do
    place 0644 "$f" "$share/examples/$(basename "$f")"
  done
  for f in "$repo"/docs/*.md; do
    [[ -e $f ]] && place 0644 "$f" "$doc/$(basename "$f")"
  done

  host systemctl daemon-reload
  host systemctl enable riskgated.service
  if [[ $start -eq 1 ]]; then
    # restart, not start: re-running the script after a new build is the upgrade.
    host systemctl restart riskgated.service
    host systemctl --no-pager --lines=5 status riskgated.service
  fi
  [[ $live -eq 1 ]] || echo "staged${prefix:+ under $prefix}: nothing on this host was changed"
}

do_uninstall() {
  host systemctl disable --now riskgated.service
  if [[ $live -eq 1 ]]; then
    [[ -x $sbin/riskgated ]] || die "$sbin/riskgated not found: cannot remove the pins (riskgated --uninstall)"
    "$sbin/riskgated" --uninstall
  else
    echo "would run on the host: $sbin/riskgated --uninstall"
  fi
  local f
  for f in "$sbin/riskgated" "$sbin/riskgatectl" "$unit_dir/riskgated.service"; do
    if [[ -e $f ]]; then
      run rm -f "$f"
      [[ $dry_run -eq 1 ]] || echo "removed: $f"
    fi
  done
  run rm -rf "$share" "$doc"
  host systemctl daemon-reload
  echo "kept: $etc (settings, policies) and /var/log/riskgate (decision log); remove them by hand"
}

if [[ $live -eq 1 && $(id -u) -ne 0 ]]; then
  die "must run as root (try: sudo $0 ${args[*]}), or stage with --prefix DIR / --dry-run"
fi

if [[ $uninstall -eq 1 ]]; then
  do_uninstall
else
  do_install
fi
