#!/usr/bin/env bash
# Runs the functions through the real Lambda runtime interface, locally: `cargo lambda watch`
# emulates the Lambda runtime API, `cargo lambda invoke` sends the sample events in
# tests/events/. AWS is moto's server and Make is the in-repo simulator, both on 127.0.0.1.
# Needs .venv with moto[server] and cargo-lambda (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
listening() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$1" 2>/dev/null; }
wait_for() { # port
    for _ in $(seq 1 300); do
        if listening "$1"; then return 0; fi
        sleep 0.5
    done
    echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
mkdir -p target

moto_port="$(free_port)"; sim_port="$(free_port)"; invoke_port="$(free_port)"
moto_server -H 127.0.0.1 -p "$moto_port" >target/lambda-moto.log 2>&1 & pids+=($!)
wait_for "$moto_port"

cargo build --locked -p makesync-cli --quiet
target/debug/makesync simulator --port "$sim_port" >target/lambda-simulator.log 2>&1 & pids+=($!)
wait_for "$sim_port"

export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
eval "$(python3 tests/local/create_resources.py "$AWS_ENDPOINT_URL")"
export MAKESYNC_API_BASE_URL="http://127.0.0.1:$sim_port"

cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$invoke_port" --ignore-changes \
    >target/lambda-watch.log 2>&1 & pids+=($!)

invoke() { # function, event file
    cargo lambda invoke "$1" --invoke-address 127.0.0.1 --invoke-port "$invoke_port" --data-file "$2"
}
# watch listens at once and compiles a function on its first invoke.
wait_for "$invoke_port"

echo "== connect (tests/events/connect.json)"
out="$(invoke makesync-connect tests/events/connect.json)"; echo "$out"
grep -q '"organizationName":"Acme Robotics"' <<<"$out"
grep -q '"syncEnqueued":true' <<<"$out"
if grep -q "sim-token" <<<"$out"; then echo "the token is in the response" >&2; exit 1; fi

echo "== worker (tests/events/worker-sqs.json: one sync request, one malformed body)"
out="$(invoke makesync-worker tests/events/worker-sqs.json)"; echo "$out"
grep -q '"batchItemFailures":\[\]' <<<"$out"
# The request was synced, not just dropped: the worker's JSON log says so, with its ids.
grep -q '"message":"sync succeeded","message_id":"9d2a4a5e-1c1b-4b7f-9a59-0e0f6a1c2d01","connection_id":"demo-acme"' target/lambda-watch.log
grep -q '"message":"sync message dropped","message_id":"9d2a4a5e-1c1b-4b7f-9a59-0e0f6a1c2d02"' target/lambda-watch.log

echo "== scheduler (tests/events/scheduler.json)"
out="$(invoke makesync-scheduler tests/events/scheduler.json)"; echo "$out"
grep -q '"enqueued":1' <<<"$out"

if grep -q "sim-token" target/lambda-watch.log; then echo "a log line holds the token" >&2; exit 1; fi
echo "== the functions ran through the Lambda runtime interface"
