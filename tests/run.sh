#!/usr/bin/env bash
# The test command: formatting, lints, and every test in the workspace — the AWS ones against
# moto's server on 127.0.0.1, which this script installs (into .venv) and starts if needed,
# and the DynamoDB ones again against dynalite (npm). Run from anywhere: bash tests/run.sh
#
# How it is laid out, for time: one build serves every test phase (the runs that name one
# test target do so with `--workspace`, so that they reuse it: `-p makesync-tests` alone would
# unify features differently and rebuild the AWS SDK); moto and dynalite are installed while
# it compiles; and once the tests have run, the phases that mostly wait on their servers —
# the chaos run on moto, the DynamoDB tests and the chaos run on dynalite — run side by side
# with clippy, which has a target directory of its own so that it locks nothing they use.
# Each phase prints how long it took; docs/testing.md gives the times.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
mkdir -p target

# Each phase says how long it took, so that a slow phase shows where it is.
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

# Servers and jobs this script starts, stopped when it ends however it ends.
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

# Waits for a background job, prints its log, and fails the script if the job failed.
finish_job() {
    local pid="$1" name="$2" log="$3" status=0
    wait "$pid" || status=$?
    echo "== $name (ran side by side; its output)"
    cat "$log"
    if [[ "$status" != "0" ]]; then
        echo "$name failed (exit $status)" >&2
        exit "$status"
    fi
}

use_dynalite=1
[[ "${MAKESYNC_SKIP_DYNALITE:-}" == "1" ]] && use_dynalite=0

phase "cargo fmt --check"
cargo fmt --all --check

# The servers' installs need the network and little CPU: they run while the tests compile.
install_pids=()
if [[ -z "${MAKESYNC_TEST_AWS_ENDPOINT:-}" && ! -x .venv/bin/moto_server ]]; then
    (
        python3 -m venv .venv
        .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    ) >target/install-moto.log 2>&1 &
    install_pids+=("$!:installing moto[server]==$MOTO_VERSION into .venv:target/install-moto.log")
fi
if [[ "$use_dynalite" == "1" ]]; then
    (cd tests/dynalite && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) \
        >target/install-dynalite.log 2>&1 &
    install_pids+=("$!:installing dynalite (tests/dynalite, npm ci):target/install-dynalite.log")
fi

phase "building the tests"
cargo test --workspace --locked --no-run

phase "starting moto"
for job in "${install_pids[@]}"; do
    IFS=: read -r pid name log <<<"$job"
    finish_job "$pid" "$name" "$log"
done
if [[ -z "${MAKESYNC_TEST_AWS_ENDPOINT:-}" ]]; then
    port="$(free_port)"
    .venv/bin/moto_server -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
    started_pids+=($!)
    wait_for "http://127.0.0.1:$port/moto-api/"
    export MAKESYNC_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
fi
echo "moto on $MAKESYNC_TEST_AWS_ENDPOINT"
# The AWS SDK must never reach past moto, whatever the developer's shell has set.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

phase "cargo test (AWS on $MAKESYNC_TEST_AWS_ENDPOINT)"
cargo test --workspace --locked -- --skip the_store_matches_make_after_a_run_of_faults \
    --skip no_member_present_throughout_a_run_is_ever_stored_as_removed

# The read path against a model of Make, on its own so that its seed and what its runs did
# are printed (MAKESYNC_MODEL_SEED=<seed> runs a seed again).
phase "the read path against a model of Make"
cargo test --workspace --locked --test read_path_model -- --nocapture \
    no_member_present_throughout_a_run_is_ever_stored_as_removed

# A second DynamoDB: the tests that use DynamoDB run again against dynalite (npm; an
# independent implementation of DynamoDB's API, which validates and orders as DynamoDB does
# and creates tables asynchronously), behind a router that sends DynamoDB calls there and every
# other service to moto. The stream tests (events, IAM) stay on moto: dynalite has no streams.
# Two jobs, each with a dynalite of its own (a dynalite serves one request at a time). Sets
# `router_endpoint` to the router's address.
router_endpoint=""
dynalite_router() {
    local dynalite_port router_port
    dynalite_port="$(free_port)"
    node tests/dynalite/server.js "$dynalite_port" >"target/dynalite-$1.log" 2>&1 &
    started_pids+=($!)
    router_port="$(free_port)"
    python3 tests/dynalite/router.py "$router_port" "http://127.0.0.1:$dynalite_port" \
        "$MAKESYNC_TEST_AWS_ENDPOINT" >"target/router-$1.log" 2>&1 &
    started_pids+=($!)
    wait_for "http://127.0.0.1:$router_port/moto-api/"
    router_endpoint="http://127.0.0.1:$router_port"
}

phase "side by side: clippy, the chaos run on moto and on dynalite, the DynamoDB tests on dynalite"
jobs_started=()
CARGO_TARGET_DIR=target/clippy cargo clippy --workspace --all-targets --locked -- -D warnings \
    >target/job-clippy.log 2>&1 &
jobs_started+=("$!:cargo clippy --all-targets -- -D warnings:target/job-clippy.log")
if [[ "$use_dynalite" == "1" ]]; then
    dynalite_router functions
    MAKESYNC_TEST_AWS_ENDPOINT="$router_endpoint" \
        cargo test --workspace --locked --test aws_functions --test credentials \
        >target/job-dynalite-tests.log 2>&1 &
    jobs_started+=("$!:the DynamoDB tests against dynalite (other services on moto):target/job-dynalite-tests.log")
    dynalite_router chaos
    MAKESYNC_TEST_AWS_ENDPOINT="$router_endpoint" \
        cargo test --workspace --locked --test chaos -- --nocapture \
        >target/job-dynalite-chaos.log 2>&1 &
    jobs_started+=("$!:the chaos run against dynalite:target/job-dynalite-chaos.log")
fi
for job in "${jobs_started[@]}"; do started_pids+=("${job%%:*}"); done
# The chaos run on moto in the foreground, so that its summary line (seed, faults by kind,
# false removals, lost messages, leaked tokens) is printed as it ends.
echo "== the chaos run"
cargo test --workspace --locked --test chaos -- --nocapture
for job in "${jobs_started[@]}"; do
    IFS=: read -r pid name log <<<"$job"
    finish_job "$pid" "$name" "$log"
done
phase "done"
