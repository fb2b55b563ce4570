#!/usr/bin/env bash
# Build one environment image with podman and run it for real, on a machine with no Docker engine
# and no image registry (only the package registries): the base image is made here with debootstrap
# (Debian bookworm minbase + python3, python3-venv and pip from Debian), the image is built from
# docker/env.Dockerfile on that base (pip installs from PyPI inside the build), then the container is
# started with host networking and lowered ulimits, its HEALTHCHECK is run until SERVING, and the
# host's `gymwire check` runs the conformance suite against it. Exit 0 only if all of that passed.
#
#   sudo docker/build-podman.sh [ENV]            ENV: textcraft (default), babyai, or any env with an extra
#
# Environment: GYMWIRE_VENV (host venv with gymwire, default ./.venv), RUN_PORT (host port the
# container listens on, default a free one), DEBIAN_MIRROR, GYMWIRE_PODMAN_WORK (scratch folder for
# the rootfs, default /var/tmp/gymwire-podman), REBUILD_BASE=1 (redo the debootstrap base),
# KEEP=1 (leave the container running), HOST_CA_BUNDLE (CA certificates the base must trust besides
# Debian's, for a proxy that inspects TLS; default the host's bundle, of which only the certificates
# Debian lacks are added). Needs root, podman and debootstrap (apt-get install podman debootstrap).
# Heavy: debootstrap (~2 min) + the image build (~2-4 min); the base images are reused.
set -euo pipefail
cd "$(dirname "$0")/.."

ENV_NAME=${1:-textcraft}
declare -A PORTS=([babyai]=50051 [textcraft]=50052 [webshop]=50053 [searchqa]=50054 [alfworld]=50055)
PORT=${PORTS[$ENV_NAME]:-50051}
PLAIN_BASE=localhost/gymwire-base:bookworm-debootstrap
BASE_IMAGE=localhost/gymwire-base:bookworm
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
IMAGE=localhost/gymwire/$ENV_NAME:dev
WORK=${GYMWIRE_PODMAN_WORK:-/var/tmp/gymwire-podman}
VENV=${GYMWIRE_VENV:-.venv}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Lower than podman's defaults (nofile 1048576), which this machine's hard limits refuse.
ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

for tool in podman debootstrap; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install podman debootstrap)"
done
[[ $(id -u) == 0 ]] || fail "run as root (debootstrap and rootful podman)"
[[ -x $VENV/bin/gymwire ]] || fail "no gymwire in $VENV (set GYMWIRE_VENV to a venv with gymwire installed)"
RUN_PORT=${RUN_PORT:-$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

# 1. The base image: python:3.11-slim cannot be pulled here, so make the same thing from Debian.
if [[ ${REBUILD_BASE:-0} == 1 ]] || ! podman image exists "$PLAIN_BASE"; then
    step "debootstrap bookworm minbase + python3 -> $PLAIN_BASE"
    rootfs=$WORK/rootfs
    rm -rf "$rootfs" && mkdir -p "$WORK"
    started=$SECONDS
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap (log: $WORK/debootstrap.log)"; }
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar --numeric-owner -C "$rootfs" -c . \
        | podman import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$PLAIN_BASE" >/dev/null
    rm -rf "$rootfs"
    echo "debootstrap base built in $((SECONDS - started)) s"
    podman rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
fi
# This machine reaches PyPI through a TLS-inspecting proxy whose CA is only in the host's bundle:
# give the base the host's extra CA certificates (none: the base is the plain debootstrap image).
if [[ ${REBUILD_BASE:-0} == 1 ]] || ! podman image exists "$BASE_IMAGE"; then
    step "host CA certificates -> $BASE_IMAGE"
    cas=$WORK/host-ca
    rm -rf "$cas" && mkdir -p "$cas"
    podman run --rm --network none "${ULIMITS[@]}" "$PLAIN_BASE" cat /etc/ssl/certs/ca-certificates.crt > "$WORK/base-bundle.pem"
    python3 - "$HOST_CA_BUNDLE" "$WORK/base-bundle.pem" "$cas" <<'PY'
import pathlib, re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
host, base = (set(pem.findall(pathlib.Path(p).read_text())) for p in sys.argv[1:3])
for i, cert in enumerate(sorted(host - base)):
    pathlib.Path(sys.argv[3], f"host-ca-{i}.crt").write_text(cert + "\n")
print(f"{len(host - base)} CA certificate(s) in {sys.argv[1]} that Debian's bundle lacks")
PY
    if compgen -G "$cas/*.crt" > /dev/null; then
        printf '%s\n' "FROM $PLAIN_BASE" "COPY *.crt /usr/local/share/ca-certificates/" \
            "RUN update-ca-certificates" \
            "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
            > "$cas/Containerfile"
        podman build -q --network none "${ULIMITS[@]}" -t "$BASE_IMAGE" "$cas" >/dev/null || fail "adding the host CAs"
    else
        podman tag "$PLAIN_BASE" "$BASE_IMAGE"
    fi
fi
podman run --rm --network none "${ULIMITS[@]}" "$BASE_IMAGE" python3 --version

# 2. The environment image, from the same recipe as docker/compose.yaml (BASE swapped).
step "podman build $IMAGE (ENV=$ENV_NAME PORT=$PORT)"
started=$SECONDS
podman build --format docker --network host "${ULIMITS[@]}" \
    --ignorefile docker/env.Dockerfile.dockerignore -f docker/env.Dockerfile \
    --build-arg BASE="$BASE_IMAGE" --build-arg ENV="$ENV_NAME" --build-arg PORT="$PORT" \
    -t "$IMAGE" . || fail "podman build"
echo "image built in $((SECONDS - started)) s; size $(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
podman image inspect "$IMAGE" --format 'user={{.Config.User}} exposed={{.Config.ExposedPorts}} healthcheck={{.Config.Healthcheck.Test}}'

# 3. Run it: host networking (no CNI bridge needed), lowered ulimits, listening on RUN_PORT.
name=gymwire-$ENV_NAME-check-$$
step "podman run $name on 127.0.0.1:$RUN_PORT"
cleanup() {
    status=$?
    if [[ $status != 0 ]]; then echo "-- container log:"; podman logs --tail 40 "$name" 2>&1 || true; fi
    [[ ${KEEP:-0} == 1 ]] || podman rm -f "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT
podman run -d --name "$name" --network host "${ULIMITS[@]}" -e GYMWIRE_PORT="$RUN_PORT" "$IMAGE" >/dev/null
[[ $(podman exec "$name" id -u) != 0 ]] || fail "the server runs as root"
echo "server user: $(podman exec "$name" id)"

# 4. The image's own HEALTHCHECK until SERVING (NOT_SERVING while data loads).
started=$SECONDS
until podman healthcheck run "$name" >/dev/null 2>&1; do
    [[ $(podman inspect "$name" --format '{{.State.Running}}') == true ]] || fail "the container exited"
    (( SECONDS - started < 180 )) || fail "not SERVING after 180 s"
    sleep 2
done
echo "HEALTHCHECK: SERVING after $((SECONDS - started)) s ($(podman exec "$name" /opt/venv/bin/python /opt/gymwire/bin/healthcheck.py))"

# 5. The conformance suite from the host, through the published port.
step "gymwire check 127.0.0.1:$RUN_PORT"
"$VENV/bin/gymwire" check "127.0.0.1:$RUN_PORT" || fail "gymwire check"

# 6. SIGTERM drains and exits 0 (what docker stop / Kubernetes do).
if [[ ${KEEP:-0} != 1 ]]; then
    step "podman stop (SIGTERM, drain)"
    podman stop -t 30 "$name" >/dev/null
    code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
    [[ $code == 0 ]] || fail "exit code $code after SIGTERM"
    echo "stopped cleanly (exit 0)"
fi
step "OK: $IMAGE built, SERVING, conformant"
