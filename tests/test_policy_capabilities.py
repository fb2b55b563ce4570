"""What a training run asks of each policy backend, read from the backend's class: trainer/train.py
asks the policy (samples the live model? needs its weights synced? runs beside torchrun?), never
the backend's name."""

from __future__ import annotations

import pytest
import torch

from gymwire.trainer.config import ConfigError, parse_config
from gymwire.trainer.model import default_model_dir
from gymwire.trainer.policy import BACKENDS, Policy, policy_class


def test_each_backend_says_how_a_training_run_samples_with_it() -> None:
    hf, vllm, openai = (policy_class(name) for name in ("hf", "vllm", "openai"))
    assert all(issubclass(policy_class(name), Policy) for name in BACKENDS)
    # transformers generates with the updater's own module; the engines hold weights of their own.
    assert hf.samples_live_model and not vllm.samples_live_model and not openai.samples_live_model
    assert vllm.needs_weight_sync and openai.needs_weight_sync
    assert openai.torchrun_conflict is None
    assert "live training model" in (hf.torchrun_conflict or "")
    assert "process group" in (vllm.torchrun_conflict or "")
    with pytest.raises(ValueError, match="unknown policy backend 'tpu'"):
        policy_class("tpu")
    with pytest.raises(TypeError, match="cannot sample with a live model"):
        openai.for_live_model(torch.nn.Linear(1, 1), None, max_batch=1)


def test_hf_over_the_live_model_needs_no_weight_sync() -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_dir()))
    tiny = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    policy = policy_class("hf").for_live_model(LlamaForCausalLM(tiny), tokenizer, max_batch=2)
    try:
        assert not policy.needs_weight_sync  # every update is already in the module it samples with
    finally:
        policy.close()


@pytest.mark.parametrize(
    ("backend", "why"),
    [
        ("hf", r"hf samples with the live training model.*backend: openai"),
        # vLLM in rank 0's process would join torchrun's process group and wait for ranks that never
        # join (a hang until the group's timeout): refused, naming the setup that works.
        ("vllm", r"backend: openai.*weight_sync: nccl"),
    ],
)
def test_torchrun_refuses_a_backend_in_the_trainers_process(monkeypatch, tmp_path, backend, why) -> None:
    import torch.distributed

    from gymwire.trainer.train import train

    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)  # a group that were created would fail, not hang
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    config = parse_config(
        {
            "envs": {"guess": "127.0.0.1:1"},
            "stages": [{"name": "a", "steps": 1, "mix": [{"env": "guess"}]}],
            "model": {"backend": backend},
            "run_dir": str(tmp_path / "run"),
        }
    )
    with pytest.raises(ConfigError, match=why):
        train(config, progress=False)
    assert not torch.distributed.is_initialized()
    assert not (tmp_path / "run").exists()
