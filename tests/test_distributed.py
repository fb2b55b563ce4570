"""FSDP2 data parallelism (gymwire.trainer.distributed) on the real default model, on CPU with gloo.

The acceptance check: two ranks under torchrun, each computing part of a GRPO step's micro-batches
(one rank also runs a zero-weight pass), give the loss, gradients, AdamW step and checkpoint state
of one process computing every micro-batch. tests/distributed_grads.py does the work and writes
the differences to a JSON file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gymwire.trainer.distributed import (
    Distributed,
    accumulate,
    broadcast_object,
    decoder_layers,
    init_from_env,
    mixed_precision_policy,
    pass_plan,
    passes_per_rank,
    shard_indices,
)

SCRIPT = Path(__file__).with_name("distributed_grads.py")


@pytest.fixture(scope="module")
def model_dir() -> Path:
    from gymwire.trainer.model import resolve_model

    return resolve_model("smollm2")


def test_shard_indices_cover_every_microbatch_once() -> None:
    for n in range(0, 8):
        for world in (1, 2, 3, 4):
            shares = [shard_indices(n, r, world) for r in range(world)]
            assert sorted(i for share in shares for i in share) == list(range(n))
            assert max(len(s) for s in shares) == passes_per_rank(n, world)
    assert shard_indices(5, 1, 2) == [1, 3]
    with pytest.raises(ValueError):
        shard_indices(3, 2, 2)


def test_single_process_context_without_torchrun(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dist = init_from_env("cpu")
    assert (dist.rank, dist.world_size, dist.is_main, dist.enabled, dist.mesh) == (0, 1, True, False, None)
    assert broadcast_object({"episodes": [1, 2]}, dist) == {"episodes": [1, 2]}
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not init_from_env("cpu").enabled


def test_accumulate_in_one_process_runs_every_microbatch() -> None:
    weight = torch.nn.Parameter(torch.tensor(2.0))
    seen = []

    def loss_fn(x: float):
        seen.append(x)
        return weight * x, {"tokens": 1.0}

    sums = accumulate([1.0, 2.0, 3.0], loss_fn, Distributed())
    assert seen == [1.0, 2.0, 3.0] and sums == {"loss": 12.0, "tokens": 3.0}
    assert weight.grad.item() == 6.0


def test_short_rank_repeats_its_last_microbatch_at_weight_zero() -> None:
    assert pass_plan(3, 0, 2) == [(0, 1.0), (2, 1.0)]
    assert pass_plan(3, 1, 2) == [(1, 1.0), (1, 0.0)]  # as many passes as rank 0, adding nothing
    assert pass_plan(1, 2, 3) == [(0, 0.0)]  # no micro-batch of its own: the step's last, at weight 0
    assert pass_plan(0, 0, 2) == []


def test_precision_policies() -> None:
    assert mixed_precision_policy("fp32").param_dtype is None
    mixed = mixed_precision_policy("bf16-mixed")
    assert (mixed.param_dtype, mixed.reduce_dtype) == (torch.bfloat16, torch.float32)
    with pytest.raises(ValueError, match="auto"):
        mixed_precision_policy("auto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("fsdp") / "results.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(SCRIPT),
        str(out),
        "full",
        "lora",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_decoder_layers_are_found_through_peft(model_dir) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    layers = decoder_layers(model)
    assert len(layers) == model.config.num_hidden_layers and type(layers[0]).__name__ == "LlamaDecoderLayer"
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert decoder_layers(wrapped) == layers


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full", "lora"])
def test_two_ranks_match_one_process(two_ranks, mode) -> None:
    r = two_ranks[mode]
    assert two_ranks["world_size"] == 2 and two_ranks["rows_received"] == 5  # broadcast from rank 0
    assert r["microbatches"] == 3  # odd: one rank runs a zero-weight pass
    assert r["loss"]["fsdp"] == pytest.approx(r["loss"]["reference"], rel=1e-6, abs=1e-9)
    assert r["stats"]["fsdp"]["tokens"] == r["stats"]["reference"]["tokens"] == 55
    assert r["stats"]["fsdp"]["clipped"] == r["stats"]["reference"]["clipped"] > 0
    # Every trained parameter has a gradient, equal to one process's (a mean over ranks would be half).
    assert r["grad_names"]["fsdp"] == r["grad_names"]["reference"]
    assert r["grad_max_abs"] > 1e-3
    assert r["grad_max_rel_diff"] <= 1e-5, r["grad_worst_param"]
    assert r["grad_norm"]["fsdp"] == pytest.approx(r["grad_norm"]["reference"], rel=1e-4)
    # One AdamW step lands on the same weights (in Hugging Face names, LoRA merged, tied head once).
    assert r["weight_names"]["fsdp"] == r["weight_names"]["reference"]
    names = r["weight_names"]["fsdp"]
    assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names
    assert not any("lora" in name or "base_layer" in name for name in names)
    assert r["weight_max_change"] > 1e-6  # the step moved the weights ...
    assert r["weight_max_abs_diff"] <= 1e-7  # ... identically
    # Full-state checkpoints: same keys and values as one process's; a fresh sharded model resumes them.
    assert r["checkpoint_keys"]["fsdp"] == r["checkpoint_keys"]["reference"]
    assert r["checkpoint_optimizer_keys"]["fsdp"] == r["checkpoint_optimizer_keys"]["reference"]
    assert r["checkpoint_max_abs_diff"] <= 1e-7 and r["optimizer_moments_max_rel_diff"] <= 1e-5
    assert r["reload_weight_max_abs_diff"] == 0.0 and r["reload_optimizer_max_abs_diff"] == 0.0


@pytest.mark.slow
def test_sharded_updater_driven_by_rank0_takes_the_one_process_step(tmp_path) -> None:
    """The real updater through the driver/follower path of `gymwire train` under torchrun: same
    loss, same mismatch metrics, same updated weights as one process."""
    script = Path(__file__).with_name("sharded_updater.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(script.parent.parent)}
    single = subprocess.run(
        [sys.executable, str(script), "single", str(tmp_path / "single")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    sharded = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            str(script),
            "sharded",
            str(tmp_path / "sharded"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    one = json.loads((tmp_path / "single" / "metrics.json").read_text())
    two = json.loads((tmp_path / "sharded" / "metrics.json").read_text())
    for key in ("loss", "kl", "grad_norm", "tokens", "mismatch_abs_mean", "mismatch_abs_max", "is_weight_mean"):
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key
    assert two["sequence_logprobs"] == pytest.approx(one["sequence_logprobs"], abs=1e-4)
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "single" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "sharded" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
