#!/usr/bin/env bash
# Install everything the tests need into ./.venv, check the protocol artefacts, lint, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh "all,train,vllm,trl,verl,skyrl,dev"
. .venv/bin/activate
# One folder for the run's temporary files, emptied by pytest at the start of the next run, so runs do
# not pile up. A passing test's folder goes when it ends; the checkpoints of the tests running at once
# still peaked at 7.7 GB there (sampled every 10 s), so the suite asks for $need_gb GB free.
basetemp="${TMPDIR:-/tmp}/gymwire-tests"
need_gb=10
free_gb=$(df -P -BG "$(dirname "$basetemp")" | awk 'NR == 2 {print int($4)}')
if [[ $free_gb -lt $need_gb ]]; then
  echo "only ${free_gb} GB free under $(dirname "$basetemp"); the tests need about ${need_gb} GB" >&2
  exit 1
fi
python protos/generate.py --check
(cd protos && buf lint)
# The newest released contract (protos/releases, see protos/generate.py --release) still holds.
(cd protos && buf breaking --against "$(ls releases/v*.binpb | sort -V | tail -n 1)")
ruff check .
ruff format --check .

# The slower checks are independent of each other and of the tests (mypy is one busy core; the recipe
# replay and the Node.js example mostly wait on package downloads and server starts): they run beside
# the tests, each into its own log, shown in this order after the tests; any failure fails the command.
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
declare -A pids
check() {  # check NAME COMMAND...: start it in the background
  local name=$1
  shift
  (
    started=$SECONDS
    status=0
    "$@" || status=$?
    echo "$((SECONDS - started))" >"$logs/$name.seconds"
    exit $status
  ) >"$logs/$name.log" 2>&1 &
  pids[$name]=$!
}
check typecheck bash scripts/typecheck.sh
# A server in another language, built from protos/ alone, must pass the conformance suite.
if command -v npm >/dev/null 2>&1; then
  check node env PATH="$PWD/.venv/bin:$PATH" bash examples/node/check.sh
else
  echo "npm not found: skipping the Node.js example's conformance check" >&2
fi
# The deployment recipes, replayed outside a container (install, build step, start, health, conformance),
# and the static checks of compose and the Kubernetes manifests.
check replay env REPLAY_TOOLS=1 bash docker/replay-recipe.sh
# tests/test_docker_build_stage.py builds in a debootstrap'd Debian root, made once per machine (minutes of
# downloads on a fresh one): started here, beside the checks above; the test waits on its lock and reuses it.
if [[ $(id -u) -eq 0 ]] && command -v debootstrap >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1; then
  check clean-root python -c 'import runpy; runpy.run_path("docker/clean-root-build.py")["base_root"]()'
fi
set +e
# Two workers, a module at a time each (module fixtures and Background stay in one process); the slow
# modules go first (tests/conftest.py). GYMWIRE_TEST_WORKERS=0 runs everything in this process.
workers=${GYMWIRE_TEST_WORKERS:-2}
if [[ $workers -gt 0 ]]; then set -- -n "$workers" --dist loadfile "$@"; fi
python -m pytest -q -p no:cacheprovider --basetemp "$basetemp" "$@"
status=$?
set -e
failed=()
for name in typecheck node replay clean-root; do
  [[ -n ${pids[$name]:-} ]] || continue
  if wait "${pids[$name]}"; then result=ok; else result=FAILED; failed+=("$name"); fi
  echo "== $name: $result ($(cat "$logs/$name.seconds" 2>/dev/null || echo '?') s)"
  cat "$logs/$name.log"
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit $status
