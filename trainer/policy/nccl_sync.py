"""Weights to a vLLM server on other GPUs over NCCL, with vLLM's own weight transfer (vLLM >= 0.32).

The server runs with `VLLM_SERVER_DEV_MODE=1` (it then serves the RL routes
`/init_weight_transfer_engine`, `/start_weight_update`, `/update_weights`,
`/finish_weight_update`) and `--weight-transfer-config '{"backend": "nccl"}'` (each worker then
holds an NCCL weight-transfer engine). This process joins one NCCL group with the server's workers
as rank 0 (the sender) over a TCP rendezvous at `master_address:master_port`, then for each sync
declares every tensor (name, dtype, shape), broadcasts them packed in fixed-size buffers, and the
workers load them with the model's `load_weights` inside vLLM's layerwise reload. The tensors must
be on this process's CUDA device; CPU tensors are moved there one at a time.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

from .base import WeightsSource, named_tensors

SERVER_HINT = 'start the server with VLLM_SERVER_DEV_MODE=1 and --weight-transfer-config \'{"backend": "nccl"}\''


class HTTPWeightSyncClient:
    """vLLM's weight-sync control plane (its `VLLMWeightSyncClient` protocol) over our HTTP
    requests, so the server's API key is sent too."""

    def __init__(self, request: Callable[..., Any]) -> None:
        self._request = request

    def init_weight_transfer_engine(self, init_info: dict[str, Any]) -> None:
        self._request("POST", "/init_weight_transfer_engine", {"init_info": init_info})

    def start_weight_update(self) -> None:
        self._request("POST", "/start_weight_update")

    def update_weights(self, update_info: dict[str, Any] | list[dict[str, Any]]) -> None:
        self._request("POST", "/update_weights", {"update_info": update_info})

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        self._request(
            "POST", "/finish_weight_update", None if weight_version is None else {"weight_version": weight_version}
        )


def local_address_towards(url: str) -> str:
    """This machine's address on the route to the server (what the server's workers dial)."""
    host = urlparse(url).hostname or "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))  # no packet is sent: this only picks the outgoing interface
        return probe.getsockname()[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def make_source(source: WeightsSource) -> Any:
    """A vLLM `WeightSource` over `source`. vLLM's own WeightSource objects pass through; anything
    else is listed once (references, no copies) because the workers must be told every tensor's
    name, dtype and shape before the first byte is sent: a stream of tensors is therefore held
    whole in memory for the sync."""
    from vllm.distributed.weight_transfer.base import ParamMeta, WeightSource

    if isinstance(source, WeightSource):
        return source
    pairs = list(named_tensors(source))

    class ListedSource(WeightSource):
        def metadata(self) -> list[ParamMeta]:
            return [ParamMeta(name, t.dtype, tuple(t.shape)) for name, t in pairs]

        def __iter__(self) -> Iterator[tuple[str, Any]]:
            for name, tensor in pairs:
                yield name, tensor if tensor.is_cuda else tensor.to("cuda", non_blocking=False)

    return ListedSource()


class NCCLWeightSender:
    """The trainer's end of the NCCL group with a vLLM server's workers; built once, used per sync."""

    def __init__(
        self, request: Callable[..., Any], base_url: str, *, master_address: str | None = None, master_port: int = 0
    ) -> None:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(
                "weight_sync: nccl needs a CUDA device in the trainer's process (NCCL "
                "broadcasts from GPU memory); on a machine without one use weight_sync: disk"
            )
        try:
            from vllm.distributed.weight_transfer.nccl_engine import (
                NCCLTrainerInitInfo,
                NCCLTrainerWeightTransferEngine,
            )
        except ImportError as exc:
            raise RuntimeError(f"weight_sync: nccl needs vLLM >= 0.32 installed beside the trainer: {exc}") from exc
        try:
            workers = int(request("GET", "/get_world_size")["world_size"])
        except Exception as exc:
            raise RuntimeError(f"the server does not offer vLLM's weight transfer ({exc}); {SERVER_HINT}") from exc
        info = NCCLTrainerInitInfo(
            master_address=master_address or local_address_towards(base_url),
            master_port=master_port or free_port(),
            world_size=1 + workers,
            rank=0,
        )
        self.workers = workers
        # The server's workers join the group inside the init request while this process opens it.
        self._engine = NCCLTrainerWeightTransferEngine.trainer_init(
            info, client=HTTPWeightSyncClient(request), source=make_source({})
        )

    def send(self, source: WeightsSource) -> None:
        self._engine.source = make_source(source)
        self._engine.send_weights()

    def close(self) -> None:
        self._engine.shutdown()
