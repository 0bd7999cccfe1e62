#!/usr/bin/env bash
# `make demo`: the main job on the embedded defaults.
#   1. builds the default synthetic data set (once) and prints its summary;
#   2. runs the TFX pipeline on it (cached executions are reused on a rerun);
#   3. starts the serving stack (Redis, model servers, caching gateways, Envoy) on loopback,
#      prints a few recommendations through Envoy, and keeps the stack up until Ctrl-C.
# DEMO_KEEP_SERVING=0 stops the stack after the recommendations (used by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${DEMO_DATA:-runs/data/default}
PORT=${DEMO_PORT:-8080}
KEEP=${DEMO_KEEP_SERVING:-1}
# Keep the output readable: TensorFlow C++ info logs and dependency FutureWarnings off.
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} PYTHONWARNINGS=${PYTHONWARNINGS:-ignore::FutureWarning}

echo "== 1/3 data: the default synthetic data set in $DATA"
if [ ! -f "$DATA/manifest.json" ]; then
  "$BIN/aiqleads" data synth --preset default --out "$DATA"
fi
"$BIN/aiqleads" data describe "$DATA"

echo "== 2/3 pipeline: ExampleGen -> ... -> Pusher on $DATA"
"$BIN/aiqleads" pipeline run --data "$DATA"

echo "== 3/3 serving: the stack on 127.0.0.1:$PORT"
"$BIN/aiqleads" serve --port "$PORT" &
serve_pid=$!
trap 'kill -TERM $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 180); do
  if "$BIN/aiqleads" recommend --url "http://127.0.0.1:$PORT" --user demo-probe --k 1 >/dev/null 2>&1; then break; fi
  kill -0 $serve_pid 2>/dev/null || { echo "demo: the serving stack exited; see its output above" >&2; exit 1; }
  sleep 1
done
for user in $("$BIN/python" -c "import csv,sys; r=csv.DictReader(open('$DATA/users.csv')); print(' '.join(row['user_id'] for _, row in zip(range(3), r)))"); do
  "$BIN/aiqleads" recommend --url "http://127.0.0.1:$PORT" --user "$user" --k 5
done
if [ "$KEEP" = 1 ]; then
  echo "demo: the stack is up on http://127.0.0.1:$PORT (REST and gRPC); Ctrl-C stops it."
  wait $serve_pid
fi
