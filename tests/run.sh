#!/usr/bin/env bash
# The test command: formatting, lints, and every test in the workspace — the AWS ones against
# moto's server on 127.0.0.1, which this script installs (into .venv) and starts if needed.
# Run from anywhere: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"

# Each phase says how long the one before it took, so that a slow phase shows where it is.
phase_started=$(date +%s)
phase_name=""
phase() {
    local now
    now=$(date +%s)
    if [[ -n "$phase_name" ]]; then
        echo "-- $phase_name: $((now - phase_started)) s"
    fi
    phase_name="$1"
    phase_started=$now
    [[ "$1" == "done" ]] || echo "== $1"
}

phase "cargo fmt --check"
cargo fmt --all --check

phase "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Servers this script starts, stopped when it ends however it ends.
started_pids=()
stop_servers() {
    for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_servers EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1])" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "$1 did not answer" >&2
    return 1
}

if [[ -z "${MAKESYNC_TEST_AWS_ENDPOINT:-}" ]]; then
    if [[ ! -x .venv/bin/moto_server ]]; then
        phase "installing moto[server]==$MOTO_VERSION into .venv"
        python3 -m venv .venv
        .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    fi
    port="$(free_port)"
    echo "== starting moto_server on 127.0.0.1:$port"
    mkdir -p target
    .venv/bin/moto_server -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
    started_pids+=($!)
    wait_for "http://127.0.0.1:$port/moto-api/"
    export MAKESYNC_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
fi
# The AWS SDK must never reach past moto, whatever the developer's shell has set.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

phase "cargo test (AWS on $MAKESYNC_TEST_AWS_ENDPOINT)"
cargo test --workspace --locked -- --skip the_store_matches_make_after_a_run_of_faults \
    --skip no_member_present_throughout_a_run_is_ever_stored_as_removed
# The runs below name one test target each with `--workspace`, so that they reuse the build
# above: `-p makesync-tests` alone would unify features differently and rebuild the AWS SDK.

# The read path against a model of Make, on its own so that its seed and what its runs did
# are printed (MAKESYNC_MODEL_SEED=<seed> runs a seed again).
phase "the read path against a model of Make"
cargo test --workspace --locked --test read_path_model -- --nocapture \
    no_member_present_throughout_a_run_is_ever_stored_as_removed

# A second DynamoDB: the tests that use DynamoDB run again against dynalite (npm; an
# independent implementation of DynamoDB's API, which validates and orders as DynamoDB does
# and creates tables asynchronously), behind a router that sends DynamoDB calls there and every
# other service to moto. The stream tests (events, IAM) stay on moto: dynalite has no streams.
# It runs beside the chaos run on moto (both mostly wait on their servers); its output is
# printed once the chaos run has ended.
dynalite_pid=""
if [[ "${MAKESYNC_SKIP_DYNALITE:-}" != "1" ]]; then
    phase "installing dynalite (tests/dynalite, npm ci)"
    (cd tests/dynalite && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
    dynalite_port="$(free_port)"
    node tests/dynalite/server.js "$dynalite_port" >target/dynalite.log 2>&1 &
    started_pids+=($!)
    router_port="$(free_port)"
    python3 tests/dynalite/router.py "$router_port" "http://127.0.0.1:$dynalite_port" "$MAKESYNC_TEST_AWS_ENDPOINT" >target/router.log 2>&1 &
    started_pids+=($!)
    wait_for "http://127.0.0.1:$router_port/moto-api/"
    (
        set -e
        export MAKESYNC_TEST_AWS_ENDPOINT="http://127.0.0.1:$router_port"
        echo "== the DynamoDB tests against dynalite (other services on moto, through 127.0.0.1:$router_port)"
        cargo test --workspace --locked --test aws_functions --test credentials
        echo "== the chaos run against dynalite"
        cargo test --workspace --locked --test chaos -- --nocapture
    ) >target/dynalite-pass.log 2>&1 &
    dynalite_pid=$!
fi

# The chaos run on its own, so that its summary line (seed, faults by kind, false removals,
# lost messages, leaked tokens) is printed, not captured.
phase "the chaos run"
cargo test --workspace --locked --test chaos -- --nocapture

if [[ -n "$dynalite_pid" ]]; then
    phase "the dynalite pass (run beside the chaos run)"
    dynalite_status=0
    wait "$dynalite_pid" || dynalite_status=$?
    cat target/dynalite-pass.log
    if [[ "$dynalite_status" != "0" ]]; then
        echo "the dynalite pass failed (exit $dynalite_status)" >&2
        exit "$dynalite_status"
    fi
fi
phase "done"
