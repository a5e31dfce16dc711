#!/usr/bin/env bash
# The Ginger demo, on a fresh Debian 12 machine as root: installs what it needs (a Rust
# toolchain if there is none; BIRD 2, FRR, iproute2, the CNI plugins), builds ginger-node,
# gingerctl, the ginger CNI plugin and ginger-lab (debug build), builds a small cluster out of
# network namespaces (`ginger-lab up`), shows it (`ginger-lab status`: who peers with whom,
# which blocks live where, whether every pod reaches every other), and removes it again
# (`ginger-lab down`) — also when interrupted. Nothing is added to this machine's own network:
# the lab's namespaces have no link to it.
#
#   ./scripts/demo.sh                      3 nodes, 2 pods each, a BIRD top-of-rack router
#   ./scripts/demo.sh --racks 2 --nodes 4  AS per rack: a BIRD ToR and an FRR ToR
#   ./scripts/demo.sh --keep               leave the lab up (then: ginger-lab status / down)
set -euo pipefail
cd "$(dirname "$0")/.."

keep=0
lab_args=()
usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  echo "options: --keep, and ginger-lab up's: --nodes N --pods-per-node K --tor bird|frr --racks R"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --nodes | --pods-per-node | --tor | --racks)
      [ $# -ge 2 ] || { echo "demo.sh: $1 needs a value" >&2; exit 2; }
      lab_args+=("$1" "$2")
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" != 0 ]; then
  echo "demo.sh: run as root (it creates network namespaces and starts routing daemons in them)" >&2
  exit 1
fi

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }

step "Installing what the demo needs"
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
  echo "no Rust toolchain: installing rustup's minimal stable toolchain into $HOME/.cargo"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl ca-certificates gcc libc6-dev >/dev/null
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y -q --profile minimal --default-toolchain stable
fi
./scripts/install-deps.sh --no-test-tools

step "Building ginger-node, gingerctl, the ginger CNI plugin and ginger-lab (debug)"
cargo build --locked -p agent -p cni -p e2e \
  --bin ginger-node --bin gingerctl --bin ginger --bin ginger-lab
lab="${CARGO_TARGET_DIR:-target}/debug/ginger-lab"
export GINGER_LAB_DIR="${GINGER_LAB_DIR:-/run/ginger-lab}"

# Whatever happens from here on (a failure, Ctrl-C), the lab goes away — unless --keep (and
# not interrupted).
interrupted=0
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ "$keep" = 1 ] && [ "$interrupted" = 0 ]; then
    step "The lab stays up (--keep)"
    echo "  $lab status      # look again"
    echo "  $lab down        # remove it"
    echo "  ip netns list    # its namespaces; e.g. ip netns exec ginger-lab-pod-web-1-node-1 ping 10.244.…"
  else
    step "ginger-lab down"
    "$lab" down || echo "demo.sh: down failed; run \`$lab down\` again" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'interrupted=1; echo; echo "demo.sh: interrupted" >&2; exit 130' INT TERM

step "ginger-lab up ${lab_args[*]}"
"$lab" up "${lab_args[@]}" --no-status

step "ginger-lab status"
status_file="$(mktemp)"
"$lab" status | tee "$status_file"
verdict="$(grep '^verdict: ' "$status_file" || true)"
rm -f "$status_file"

step "Result"
case "$verdict" in
  "verdict: all "*) echo "every pod reaches every other, over routes BGP distributed: ${verdict#verdict: }" ;;
  *) echo "NOT every pod reaches every other: ${verdict#verdict: }"; exit 3 ;;
esac
