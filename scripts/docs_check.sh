#!/usr/bin/env bash
# The quickstart's OpenAPI document and /docs, checked against real tools: the document
# validates as OpenAPI 3.1 (openapi-spec-validator), schemathesis finds no 5xx and no answer
# that contradicts the document (without a key, with the rate-limited demo key, and with an
# unlimited key), headless Chromium authorizes in Swagger UI and calls GET /data, and a client
# generated from the document (openapi-python-client) calls every operation and parses every
# refusal into the document's problem model.
# A screenshot of the docs is kept at <target directory>/browser/docs.png.
#
# Installs what it needs: the PyPI tools, Debian's chromium, and playwright-core (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

# Where cargo builds (`CARGO_TARGET_DIR` or the workspace's own), and a virtual environment
# there for the PyPI tools: the system interpreter may be externally managed.
target=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
if [ ! -x "$target/ci-venv/bin/python" ]; then
  python3 -m venv "$target/ci-venv" || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv "$target/ci-venv"
  }
fi
export PATH="$target/ci-venv/bin:$PATH"
python -m pip install -q --disable-pip-version-check \
  "schemathesis==4.32.5" "openapi-spec-validator==0.9.0" "openapi-python-client==0.29.1"
if ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
(cd tests/browser && npm ci --no-audit --no-fund --silent)

cargo build -q --locked --example quickstart
quickstart="$target/debug/examples/quickstart"
servers=()
trap 'for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT

# Starts the quickstart on a free port with the given environment; sets `base` and `log`.
start() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log=$(mktemp)
  env -u API_KEYS PORT="$port" "$@" "$quickstart" >"$log" 2>&1 &
  servers+=("$!")
  base="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    curl -fs "$base/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the quickstart did not start:"; cat "$log"; return 1
}

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
schemathesis_run() {
  schemathesis run "$base/openapi.json" --checks "$checks" --max-examples 25 \
    --seed 1 --no-color "$@"
}

echo "== the quickstart's document validates as OpenAPI"
start
demo_key=$(grep -o 'demo_[A-Za-z0-9]*' "$log" | head -n 1)
curl -fs "$base/openapi.json" -o "$target/openapi.json"
openapi-spec-validator "$target/openapi.json"

echo "== /docs in headless Chromium"
mkdir -p "$target/browser"
node tests/browser/docs.mjs "$base" "$demo_key" "$target/browser/docs.png"

echo "== schemathesis, without a key"
schemathesis_run

echo "== schemathesis, with the demo key (60 requests a minute: 429s are part of the document)"
start
demo_key=$(grep -o 'demo_[A-Za-z0-9]*' "$log" | head -n 1)
schemathesis_run -H "x-api-key: $demo_key"

echo "== schemathesis, with an unlimited key from API_KEYS"
ci_key="ci_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
start API_KEYS="ci=$ci_key"
schemathesis_run -H "x-api-key: $ci_key"

echo "== a client generated from the document (openapi-python-client) reads every answer"
start
demo_key=$(grep -o 'demo_[A-Za-z0-9]*' "$log" | head -n 1)
rm -rf "$target/openapi-client"
mkdir -p "$target/openapi-client"
(cd "$target/openapi-client" && openapi-python-client generate --path "$target/openapi.json" \
  --meta none --output-path "$target/openapi-client/quickstart_client" >/dev/null)
python scripts/openapi_client.py "$target/openapi-client/quickstart_client" \
  "$target/openapi.json" "$base" "$demo_key"
