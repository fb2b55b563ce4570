#!/usr/bin/env bash
# Install, unit-test and conformance-check the Node.js example; exits non-zero on any failure.
#
#   examples/node/check.sh            (from anywhere; CI calls it)
#
# Steps: npm ci; npm test; start server.js on a free port (127.0.0.1, port 0: the server prints the
# port it got); wait until it serves; `gymwire check` against it; the Node client plays an episode
# against it (unary and over the Session stream); stop the server.
# Finds gymwire as $GYMWIRE, else on PATH, else in the repository's .venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

gymwire="${GYMWIRE:-}"
if [[ -z "$gymwire" ]]; then
  if command -v gymwire >/dev/null 2>&1; then gymwire="$(command -v gymwire)"
  elif [[ -x "$repo/.venv/bin/gymwire" ]]; then gymwire="$repo/.venv/bin/gymwire"
  else echo "check.sh: gymwire not found (set GYMWIRE, or install the Python package into $repo/.venv)" >&2; exit 1
  fi
fi

echo "== npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "== npm test"
npm test --silent

log="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$log"
}
trap cleanup EXIT

echo "== start server.js"
node server.js --host 127.0.0.1 --port 0 >"$log/out" 2>"$log/err" &
server_pid=$!
address=""
for _ in $(seq 300); do  # up to 30 s
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "check.sh: the server exited early:" >&2; cat "$log/err" >&2; exit 1
  fi
  address="$(sed -n 's/.*serving gymwire\.v1 on \([^ ]*\)$/\1/p' "$log/out" | head -n1)"
  [[ -n "$address" ]] && break
  sleep 0.1
done
if [[ -z "$address" ]]; then
  echo "check.sh: the server did not start within 30 s:" >&2; cat "$log/err" >&2; exit 1
fi
echo "server at $address"

status=0
echo "== gymwire check $address"
"$gymwire" check "$address" || status=1

echo "== node client.js $address"
node client.js "$address" --quiet --difficulty hard >"$log/client" 2>&1 || { status=1; cat "$log/client"; }
tail -n 1 "$log/client"
echo "== node client.js $address --stream"
node client.js "$address" --quiet --stream --seed 42 >"$log/client" 2>&1 || { status=1; cat "$log/client"; }
tail -n 1 "$log/client"

if [[ $status -ne 0 ]]; then
  echo "check.sh: FAILED (server log below)" >&2
  cat "$log/err" >&2
  exit 1
fi
echo "check.sh: all checks passed"
