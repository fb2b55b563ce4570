# syntax=docker/dockerfile:1
# One gymwire environment server per image: only that environment's extra, its data generated and
# indexed at build time, a non-root user, a gRPC health check, the environment's fixed port.
#
#   docker build -f docker/env.Dockerfile --build-arg ENV=webshop --build-arg PORT=50053 -t gymwire/webshop .
#
# Build args (docker/compose.yaml sets them for every environment):
#   ENV      registered environment name, also the pip extra: babyai textcraft webshop searchqa alfworld
#   PORT     the port the server listens on and EXPOSEs (50051..50055, see docker/README.md)
#   OPTIONS  environment options, "key=value key=value" (each becomes `-o key=value`); the build step
#            and the server read the same value, so the caches built here are the ones the server opens
#   BASE     the base image (python:3.11-slim; docker/build-podman.sh passes a debootstrap'd Debian)
#   UID      the numeric id of the non-root user
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# Build tools for the dependencies that PyPI has only as source archives (the alfworld extra's jericho
# runs make and cc; fast-downward-textworld runs cmake, from PyPI, with make and c++). This stage only:
# the runtime stage copies the built venv, not the tools. Before `ARG ENV`, so that every environment's
# build shares this layer.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ARG ENV
ARG OPTIONS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/opt/gymwire/cache GYMWIRE_ENV=${ENV} GYMWIRE_OPTIONS=${OPTIONS}
RUN test -n "${ENV}" || { echo "build arg ENV is required (babyai, textcraft, webshop, searchqa, alfworld)" >&2; exit 1; }
RUN python3 -m venv /opt/venv && mkdir -p /opt/gymwire/cache
WORKDIR /src
# The source tree in one copy: env.Dockerfile.dockerignore leaves out what the distribution is not built
# from (tests, bench, examples, runs, .venv...), so a new source folder needs no line here.
COPY . ./
# Not editable: the image holds the built package, exactly what `pip install "gymwire[ENV]"` gives.
RUN /opt/venv/bin/pip install "/src[${ENV}]"
COPY docker/prepare.py docker/healthcheck.py /opt/gymwire/bin/
# The environment's build step: load it once with the server's options, which generates its data
# and builds its indices under $XDG_CACHE_HOME (webshop: catalogue + tantivy index; searchqa: the
# corpus and BM25 index). A failure here (a missing dependency, bad options) fails the build.
RUN /opt/venv/bin/python /opt/gymwire/bin/prepare.py

FROM ${BASE} AS runtime
ARG ENV
ARG PORT=50051
ARG OPTIONS=""
ARG UID=10001
RUN useradd --uid "${UID}" --user-group --home-dir /home/gymwire --create-home --shell /usr/sbin/nologin gymwire
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/gymwire/bin /opt/gymwire/bin
# The caches belong to the server's user: search indices may take a reader lock file beside them.
COPY --from=build --chown=${UID}:${UID} /opt/gymwire/cache /opt/gymwire/cache
COPY --chmod=755 docker/entrypoint.sh /opt/gymwire/bin/entrypoint.sh
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/opt/gymwire/cache \
    GYMWIRE_ENV=${ENV} GYMWIRE_PORT=${PORT} GYMWIRE_HOST=0.0.0.0 GYMWIRE_OPTIONS=${OPTIONS}
USER ${UID}:${UID}
WORKDIR /home/gymwire
EXPOSE ${PORT}
# SERVING only once the data is loaded; start-period covers loading real data mounted at run time.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/venv/bin/python", "/opt/gymwire/bin/healthcheck.py"]
STOPSIGNAL SIGTERM
# `gymwire serve $GYMWIRE_ENV --host 0.0.0.0 --port $GYMWIRE_PORT -o ...`; arguments given to
# `docker run IMAGE ...` are appended (e.g. --workers 2 --max-sessions 8192).
ENTRYPOINT ["/opt/gymwire/bin/entrypoint.sh"]
CMD []
