#!/usr/bin/env bash
# Install everything the tests need into ./.venv, check the protocol artefacts, lint, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh "all,train,vllm,trl,verl,skyrl,dev"
. .venv/bin/activate
python protos/generate.py --check
(cd protos && buf lint)
# The newest released contract (protos/releases, see protos/generate.py --release) still holds.
(cd protos && buf breaking --against "$(ls releases/v*.binpb | sort -V | tail -n 1)")
ruff check .
ruff format --check .
bash scripts/typecheck.sh
# A server in another language, built from protos/ alone, must pass the conformance suite.
if command -v npm >/dev/null 2>&1; then
  PATH="$PWD/.venv/bin:$PATH" bash examples/node/check.sh
else
  echo "npm not found: skipping the Node.js example's conformance check" >&2
fi
# The deployment recipes, replayed outside a container (install, build step, start, health, conformance),
# and the static checks of compose and the Kubernetes manifests.
REPLAY_TOOLS=1 bash docker/replay-recipe.sh
set +e
python -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit $status
