#!/usr/bin/env bash
# Builds Sluice and the example upstream (release), starts the upstream on 127.0.0.1:50052
# and Sluice on 127.0.0.1:50051 in front of it, runs the demo client once, and keeps
# serving until Ctrl-C. Both processes are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

LISTEN=${SLUICE_LISTEN:-127.0.0.1:50051}
UPSTREAM=${SLUICE_UPSTREAM:-127.0.0.1:50052}

echo "== building (release)"
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --quiet -p sluice -p sluice-tests --bins

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

./target/release/example-upstream --listen "$UPSTREAM" &
pids+=($!)
./target/release/sluice --listen "$LISTEN" --upstream "$UPSTREAM" "$@" &
pids+=($!)

for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}") 2>/dev/null && break
  sleep 0.1
done

echo
echo "== demo: calls through sluice"
./target/release/demo-client --target "$LISTEN" world sluice
cat <<MSG

Sluice listens on $LISTEN and forwards every gRPC method to $UPSTREAM.
Call it with any gRPC client, e.g.:
  ./target/release/demo-client --target $LISTEN alice bob
  grpcurl -plaintext -import-path tests/proto -proto helloworld/helloworld.proto \\
          -d '{"name":"you"}' $LISTEN helloworld.Greeter/SayHello
Press Ctrl-C to stop.
MSG
wait
