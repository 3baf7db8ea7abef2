#!/bin/sh
# The Dockerfile's build and run steps without Docker: release build, the runtime layout
# (binary in bin/, data in data/, the same environment), then the process started and its
# health check probed as HEALTHCHECK would. Usage: deploy/build-runtime.sh [layout-dir]
set -eu
cd "$(dirname "$0")/.."
root="${1:-target/runtime}"
cargo build --release --locked --bin trunkwarden
rm -rf "$root"
mkdir -p "$root/bin" "$root/data"
cp target/release/trunkwarden "$root/bin/trunkwarden"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TRUNKWARDEN_LISTEN="127.0.0.1:$port" TRUNKWARDEN_DATA_DIR="$root/data" HOME="$root/data" \
  TRUNKWARDEN_GITHUB_WEBHOOK_SECRET=runtime-check "$root/bin/trunkwarden" serve >"$root/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null
    echo "runtime layout in $root: /healthz and /readyz answer"
    exit 0
  fi
  sleep 0.2
done
echo "the server did not become healthy; its log:" >&2
cat "$root/serve.log" >&2
exit 1
