#!/usr/bin/env bash
# The benchmark, with one command: bash bench/run.sh [--smoke] [--dynalite] [--only PART]
# Builds the release binaries (x86_64, for this machine), starts moto's server on 127.0.0.1
# (installed into .venv from PyPI if missing), and runs makesync-bench, which
# prints the tables docs/benchmarks.md shows. --smoke runs every part once and small, on the dev build
# (CI does). --dynalite sends DynamoDB calls to dynalite (npm, tests/dynalite) and the rest to
# moto: moto's DynamoDB takes a few hundred writes a second, too few for 200,000 users within
# the worker's 300 s.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
# The smoke run only proves the benchmark works, so it uses the dev build the tests already
# compiled most of (a release build takes ~12 minutes on 2 cores); its numbers mean nothing.
profile=release
bin_dir=target/release
if [[ " $* " == *" --smoke "* ]]; then
    profile=dev
    bin_dir=target/debug
fi
cargo build --profile "$profile" --locked -p makesync-cli -p makesync-worker -p makesync-scheduler \
    -p makesync-connect -p makesync-events -p makesync-bench
export MAKESYNC_BENCH_BIN_DIR="${MAKESYNC_BENCH_BIN_DIR:-$PWD/$bin_dir}"

if [[ ! -x .venv/bin/moto_server ]]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request; urllib.request.urlopen('$1')" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "nothing answers at $1" >&2
    return 1
}
pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT
port="$(free_port)"
mkdir -p target
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >target/bench-moto.log 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$port/moto-api/"

export MAKESYNC_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
export MAKESYNC_BENCH_DYNAMODB=moto
args=()
for arg in "$@"; do
    if [[ "$arg" == "--dynalite" ]]; then
        export MAKESYNC_BENCH_DYNAMODB=dynalite
    else
        args+=("$arg")
    fi
done
if [[ "$MAKESYNC_BENCH_DYNAMODB" == "dynalite" ]]; then
    (cd tests/dynalite && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
    dynalite_port="$(free_port)"
    node tests/dynalite/server.js "$dynalite_port" >target/bench-dynalite.log 2>&1 &
    pids+=($!)
    router_port="$(free_port)"
    python3 tests/dynalite/router.py "$router_port" "http://127.0.0.1:$dynalite_port" "$MAKESYNC_TEST_AWS_ENDPOINT" >target/bench-router.log 2>&1 &
    pids+=($!)
    wait_for "http://127.0.0.1:$router_port/moto-api/"
    export MAKESYNC_TEST_AWS_ENDPOINT="http://127.0.0.1:$router_port"
fi
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
rm -f target/bench-makesync-*.log
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m); $(rustc --version)"
"$bin_dir/makesync-bench" "${args[@]}"
