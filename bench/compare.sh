#!/usr/bin/env bash
# Runs the same write workload against a 3-member etcd cluster, Redis with
# 2 replicas and 3 Sentinels, a 3-node muninn cluster and a standalone
# muninn node, all on 127.0.0.1 on this machine, and prints a table with
# ratios to muninn (see docs/benchmarks.md).
#
#   bench/compare.sh [--clients 16] [--duration 10s] [--value-size 256]
#                    [--failovers 3] [--only muninn,standalone,etcd,redis]
#                    [--markdown FILE] [--json FILE]
#
# Installs etcd-server, redis-server and redis-sentinel from the Debian
# packages when they are missing and asked for (--only) (root or sudo; the packages' services are
# kept from starting by a temporary /usr/sbin/policy-rc.d). Every process
# listens on 127.0.0.1 only and is stopped by its pid when this script
# exits, however it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/muninn-compare.XXXXXX")
pidfile=$work/pids
policy=/usr/sbin/policy-rc.d
policy_set=""
compare_pid=""

restore_policy() {
  if [ -n "$policy_set" ]; then
    if [ -f "$work/policy-rc.d.orig" ]; then
      $SUDO cp -p "$work/policy-rc.d.orig" "$policy"
    else
      $SUDO rm -f "$policy"
    fi
    policy_set=""
  fi
}

cleanup() {
  rc=$?
  trap - EXIT INT TERM
  if [ -n "$compare_pid" ] && kill -0 "$compare_pid" 2>/dev/null; then
    kill -TERM "$compare_pid" 2>/dev/null || true
    wait "$compare_pid" 2>/dev/null || true
  fi
  # Anything compare started and did not stop (it stops all it started;
  # this covers it being killed). Only our own servers: check the name
  # before killing a pid that may have been reused.
  if [ -f "$pidfile" ]; then
    while read -r pid; do
      if kill -0 "$pid" 2>/dev/null; then
        comm=$(ps -o comm= -p "$pid" 2>/dev/null || true)
        case "$comm" in
          etcd*|redis*|muninn*) kill -KILL "$pid" 2>/dev/null || true ;;
        esac
      fi
    done <"$pidfile"
  fi
  restore_policy
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

# Only the servers of the systems asked for (--only) are installed.
only=muninn,standalone,etcd,redis
prev=""
for a in "$@"; do
  case "$a" in
    --only=*) only=${a#--only=} ;;
    *) if [ "$prev" = --only ]; then only=$a; fi ;;
  esac
  prev=$a
done
wants() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
need=()
if wants etcd; then command -v etcd >/dev/null 2>&1 || need+=(etcd-server); fi
if wants redis; then
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]} (Debian packages; their services are not started)"
  if [ -e "$policy" ]; then cp -p "$policy" "$work/policy-rc.d.orig"; fi
  policy_set=1
  printf '#!/bin/sh\n# muninn bench/compare.sh: keep package services from starting\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  restore_policy
fi

echo "== building muninn and bench/compare"
go build -o "$work/muninn" ./cmd/muninn
# bench/compare is its own module (it carries etcd's client and its
# dependencies, which the product's module does not): build it from there.
(cd bench/compare && go build -o "$work/compare" .)

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/compare" --muninn "$work/muninn" --pidfile "$pidfile" --dir "$work/data" "$@" &
compare_pid=$!
set +e
wait "$compare_pid"
rc=$?
set -e
compare_pid=""
exit "$rc"
