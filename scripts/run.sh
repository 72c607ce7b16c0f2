#!/usr/bin/env bash
# Builds Sluice, the example upstream and the example plugins (release), lays out a plugin
# folder (target/demo-plugins), starts the upstream on 127.0.0.1:50052 and Sluice on
# 127.0.0.1:50051 in front of it, runs the demo client once, then keeps serving until
# Ctrl-C. Both processes are stopped on exit. Extra arguments go to sluice.
set -euo pipefail
cd "$(dirname "$0")/.."

LISTEN=${SLUICE_LISTEN:-127.0.0.1:50051}
UPSTREAM=${SLUICE_UPSTREAM:-127.0.0.1:50052}
PLUGINS=target/demo-plugins

source scripts/build-tools.sh

echo "== building (release): sluice, example upstream, demo client, plugins"
cargo build --release --quiet -p sluice -p sluice-tests --bins
bash scripts/build-plugins.sh >/dev/null

echo "== plugin folder: $PLUGINS"
rm -rf "$PLUGINS" && mkdir -p "$PLUGINS"
install_plugin() { # file stem, crate (underscored), config text
  cp "target/wasm32-wasip2/release/$2.wasm" "$PLUGINS/$1.wasm"
  [ -z "$3" ] || printf '%s\n' "$3" > "$PLUGINS/$1.toml"
}
install_plugin 10-auth-token auth_token $'token = "let-me-in"\nmethods = ["/helloworld.Greeter/*"]'
install_plugin 20-method-acl method_acl 'deny = ["/sluice.testing.TestService/UnaryCall"]'
install_plugin 30-size-limit size_limit 'max_request_bytes = 1024'
install_plugin 40-dedupe dedupe ''
install_plugin 50-hello-rewrite hello_rewrite ''
install_plugin 60-frame-audit frame_audit ''
ls -1 "$PLUGINS"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

./target/release/example-upstream --listen "$UPSTREAM" &
pids+=($!)
./target/release/sluice --listen "$LISTEN" --upstream "$UPSTREAM" --plugins "$PLUGINS" "$@" &
pids+=($!)

for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}") 2>/dev/null && break
  sleep 0.1
done

echo
echo "== demo: calls through sluice and its plugins"
./target/release/demo-client --target "$LISTEN"

echo
echo "== live reload: method-acl now denies EmptyCall instead of UnaryCall (new config written, then renamed)"
printf '%s\n' 'deny = ["/sluice.testing.TestService/EmptyCall"]' > "$PLUGINS/20-method-acl.toml.tmp"
mv "$PLUGINS/20-method-acl.toml.tmp" "$PLUGINS/20-method-acl.toml"
sleep 1
./target/release/demo-client --target "$LISTEN" --only 5,6
cat <<MSG

Sluice listens on $LISTEN, forwards every gRPC method to $UPSTREAM and runs the plugins
in $PLUGINS (file-name order). Call it with any gRPC client, e.g.:
  ./target/release/demo-client --target $LISTEN
  grpcurl -plaintext -import-path tests/proto -proto helloworld/helloworld.proto \\
          -H 'authorization: Bearer let-me-in' -d '{"name":"you"}' $LISTEN helloworld.Greeter/SayHello
Plugin counters are logged every 10 s. Press Ctrl-C to stop.
MSG
wait
