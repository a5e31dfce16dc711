#!/usr/bin/env bash
# Installs what Ginger's tests and demo need on a fresh Debian 12 machine (run as root).
# Idempotent: packages already present are left alone.
set -euo pipefail
pkgs=(bird2 frr gobgpd iproute2 iputils-ping procps psmisc nftables containernetworking-plugins)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# None of the daemons may run in the machine's own namespace: the packages ship no running
# services here (no systemd), and the tests start their own copies inside namespaces.
# `--no-test-tools` (the demo): the packages only, not the test runner.
[ "${1:-}" = "--no-test-tools" ] && exit 0
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
