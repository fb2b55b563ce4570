"""Weights to a vLLM server on other GPUs over NCCL, with vLLM's own weight transfer (vLLM 0.33).

The server runs with `VLLM_SERVER_DEV_MODE=1` (it then serves the RL routes
`/init_weight_transfer_engine`, `/start_weight_update`, `/update_weights`,
`/finish_weight_update`) and `--weight-transfer-config '{"backend": "nccl"}'` (each worker then
holds an NCCL weight-transfer engine). This process joins one NCCL group with the server's workers
as rank 0 (the sender) over a TCP rendezvous at `master_address:master_port`, then for each sync
declares every tensor (name, dtype, shape), broadcasts them packed in fixed-size buffers, and the
workers load them with the model's `load_weights` inside vLLM's layerwise reload. Each tensor is
gathered (under torchrun), moved to this process's CUDA device and cast to the server's dtype only
when its turn comes: beyond the model the GPU holds the engine's packing buffers (2 x 1 GiB) and
the tensors being packed, never a second copy of the model. The first sync of a stream lists it in
host memory instead, in the server's dtype (the metadata goes first; later syncs reuse it).
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

from .base import WeightsSource, named_tensors
from .vllm import synchronize_device

log = logging.getLogger("gymwire.trainer")

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


def wire_dtype(own: Any, served: Any) -> Any:
    """The dtype a tensor travels in: a floating-point one wider than the server's dtype is cast to
    it (the server's loader would round it the same way on arrival), so a bf16 server receives half
    the bytes of fp32 master weights. Anything else travels as it is."""
    if served is None or not (own.is_floating_point and served.is_floating_point):
        return own
    return served if own.itemsize > served.itemsize else own


def wire_tensor(tensor: Any, device: Any, served: Any) -> Any:
    return tensor.to(device=device, dtype=wire_dtype(tensor.dtype, served))


def _tensor_source_class() -> type:
    """gymwire's weights as a subclass of the installed vLLM's `WeightSource`; refuses a vLLM
    without 0.33's contract."""
    import vllm
    from vllm.distributed.weight_transfer.base import WeightSource

    if not hasattr(WeightSource, "iter_full"):
        raise RuntimeError(
            f"weight_sync: nccl needs vLLM 0.33's weight transfer (the gpu extra); vLLM {vllm.__version__} is installed"
        )
    return _tensor_source_subclass(WeightSource)


@functools.cache
def _tensor_source_subclass(base: type) -> type:
    """vLLM 0.33's `WeightSource` contract: `metadata` a `functools.cached_property` (its
    `__init_subclass__` refuses anything else), the tensors from `iter_full()`, which the NCCL
    trainer engine drives (packing on CUDA streams of its own) and checks against `metadata`
    tensor by tensor."""

    class TensorSource(base):
        """Declared tensors, each moved to the sending device and cast to the wire dtype only when
        the engine reaches it, so at most a few tensors are materialised at a time."""

        def __init__(
            self,
            declared: list[Any],
            pairs: Callable[[], Iterable[tuple[str, Any]]],
            device: Any,
            served: Any,
        ) -> None:
            self._declared, self._pairs, self._device, self._served = declared, pairs, device, served

        @functools.cached_property
        def metadata(self) -> list[Any]:  # list[ParamMeta]
            return self._declared

        def iter_full(self) -> Iterator[tuple[str, Any]]:
            for name, tensor in self._pairs():
                yield name, wire_tensor(tensor, self._device, self._served)

    return TensorSource


def declare(pairs: Iterable[tuple[str, Any]], served: Any) -> list[Any]:
    from vllm.distributed.weight_transfer.base import ParamMeta

    return [ParamMeta(name, wire_dtype(t.dtype, served), tuple(t.shape)) for name, t in pairs]


def make_source(source: WeightsSource, *, device: Any, served: Any = None, declared: list[Any] | None = None) -> Any:
    """A vLLM `WeightSource` over `source` that sends each tensor from `device` in the wire dtype
    (`served`: the server's dtype, None to send every tensor as it is). vLLM's own WeightSource
    objects pass through.

    The workers must be told every tensor's name, dtype and shape before the first byte is sent.
    A model or state dict is declared from its tensors (references). A stream (the trainer's
    `named_weights()`, which under torchrun gathers each tensor from the shards) is consumed once:
    given `declared` (the previous sync's metadata) it is sent as it comes, one tensor at a time;
    the first time it is listed into host memory in the wire dtype. A stream must therefore yield
    the same tensors in the same order at every sync (vLLM's engine stops a sync that does not
    with an error naming the first differing tensor; the server's transfer group is then unusable)."""
    from vllm.distributed.weight_transfer.base import WeightSource

    if isinstance(source, WeightSource):
        return source
    cls = _tensor_source_class()
    if isinstance(source, Mapping) or callable(getattr(source, "state_dict", None)):
        refs = list(named_tensors(source))
        return cls(declare(refs, served), lambda: refs, device, served)
    if declared is not None:
        stream = named_tensors(source)
        return cls(declared, lambda: stream, device, served)
    import torch

    staged = [(name, wire_tensor(t, torch.device("cpu"), served)) for name, t in named_tensors(source)]
    return cls(declare(staged, served), lambda: staged, device, served)


def served_dtype(request: Callable[..., Any]) -> Any:
    """The server model's dtype from vLLM's `/server_info` (a development route, served beside the
    weight-transfer ones), or None when it does not say (then tensors are sent as they are)."""
    import torch

    try:
        info = request("GET", "/server_info?config_format=json")
        name = str(info["vllm_config"]["model_config"]["dtype"])
    except Exception as exc:
        log.warning("the server's dtype is unknown (%s): weights are sent in the trainer's dtypes", exc)
        return None
    dtype = getattr(torch, name.removeprefix("torch."), None)
    return dtype if isinstance(dtype, torch.dtype) else None


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
            raise RuntimeError(f"weight_sync: nccl needs vLLM 0.33 installed beside the trainer: {exc}") from exc
        _tensor_source_class()  # refuses another vLLM's contract before the server is asked anything
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
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.served = served_dtype(request)
        self._declared: list[Any] | None = None  # the last sync's metadata: later streams are sent as they come
        # The server's workers join the group inside the init request while this process opens it.
        self._engine = NCCLTrainerWeightTransferEngine.trainer_init(
            info, client=HTTPWeightSyncClient(request), source=make_source({}, device=self.device)
        )

    def send(self, source: WeightsSource) -> None:
        synchronize_device()  # the optimizer step has landed before the engine's streams read the weights
        source = make_source(source, device=self.device, served=self.served, declared=self._declared)
        self._engine.source = source
        self._engine.send_weights()
        self._declared = source.metadata

    def close(self) -> None:
        self._engine.shutdown()
