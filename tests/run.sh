#!/usr/bin/env bash
# The test command: formatting, lints, and every test in the workspace — the AWS ones against
# moto's server on 127.0.0.1, which this script installs (into .venv) and starts if needed.
# Run from anywhere: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

moto_pid=""
if [[ -z "${MAKESYNC_TEST_AWS_ENDPOINT:-}" ]]; then
    if [[ ! -x .venv/bin/moto_server ]]; then
        echo "== installing moto[server]==$MOTO_VERSION into .venv"
        python3 -m venv .venv
        .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    fi
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    echo "== starting moto_server on 127.0.0.1:$port"
    .venv/bin/moto_server -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
    moto_pid=$!
    trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    export MAKESYNC_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
fi
# The AWS SDK must never reach past moto, whatever the developer's shell has set.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

echo "== cargo test (AWS on $MAKESYNC_TEST_AWS_ENDPOINT)"
cargo test --workspace --locked -- --skip the_store_matches_make_after_a_run_of_faults
# The chaos run on its own, so that its summary line (seed, faults by kind, false removals,
# lost messages, leaked tokens) is printed, not captured.
echo "== the chaos run"
cargo test --locked -p makesync-tests --test chaos -- --nocapture
