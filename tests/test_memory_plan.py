"""The GPU memory plan (trainer/memory_plan.py), `gymwire plan`, and `gymwire train`'s check before loading.

The shapes come from the model built on the meta device; the byte counts below are worked out by
hand from the published Qwen2.5-7B-Instruct config (hidden 3584, intermediate 18944, 28 layers,
28 heads / 4 KV heads of 128, vocabulary 152064, untied embeddings).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gymwire.cli.main import main
from gymwire.trainer.config import load_config, parse_config
from gymwire.trainer.memory_plan import GIB, PlanError, model_shape, plan
from gymwire.trainer.settings import parse_memory

ROOT = Path(__file__).resolve().parent.parent
PAPER = sorted((ROOT / "configs" / "paper").glob("*.yaml"))
QWEN7B = "Qwen/Qwen2.5-7B-Instruct"

# The paper configs' sections as they were: 7B, full fine-tuning in bf16-mixed with the KL reference,
# one process with vLLM (0.35 of the GPU, sleep mode) beside the update.
OLD_PAPER = {
    "envs": {"webshop": "127.0.0.1:50053"},
    "model": {"name": QWEN7B, "backend": "vllm"},
    "rollout": {"group_size": 8, "batch_tasks": 16, "max_new_tokens": 200, "max_total_tokens": 8192},
    "grpo": {
        "learning_rate": 1.0e-6,
        "beta": 0.001,
        "precision": "bf16-mixed",
        "gradient_checkpointing": True,
        "token_budget": 16384,
    },
    "vllm": {"max_model_len": 8192, "gpu_memory_utilization": 0.35, "enable_sleep_mode": True},
    "checkpoint": {"every": 10, "keep_last": 2},
    "stages": [{"name": "webshop-easy", "steps": 200, "mix": [{"env": "webshop", "difficulty": "easy"}]}],
}


@pytest.mark.parametrize(
    ("name", "published"),
    [
        (QWEN7B, 7_615_616_512),
        ("Qwen/Qwen2.5-3B-Instruct", 3_085_938_688),
        ("Qwen/Qwen2.5-1.5B-Instruct", 1_543_714_304),
        ("smollm2", 134_515_008),  # the embedded default, SmolLM2-135M-Instruct
    ],
)
def test_shipped_shapes_build_the_published_parameter_counts(name, published):
    shape = model_shape(name)
    assert shape.params == published
    assert "shipped table" in shape.source


def test_plan_of_the_old_paper_config_by_hand():
    p, layers, h, i, vocab, tokens = 7_615_616_512, 28, 3584, 18944, 152064, 16384
    result = plan(parse_config(OLD_PAPER), gpus=1, gpu_memory="80GiB")
    rows = {r.component: r for r in result.rows}
    assert rows["weights (fp32)"].update == 4 * p
    assert rows["AdamW moments"].rollouts == 8 * p
    assert rows["gradients"].update == 4 * p and rows["gradients"].rollouts == 0
    assert rows["reference model (bf16)"].update == 2 * p
    # Under gradient checkpointing the autocast cache of bf16 weights ends with the forward, before
    # the gradients exist; without it backward keeps those copies.
    assert rows["autocast bf16 weight copies"].update == 0
    no_checkpointing = parse_config({**OLD_PAPER, "grpo": {**OLD_PAPER["grpo"], "gradient_checkpointing": False}})
    assert plan(no_checkpointing, gpus=1, gpu_memory="80GiB").component("autocast").update == 2 * p
    # Checkpointed: 28 layer inputs in bf16, one layer recomputed (2*(9h + 4i) + 16h bytes a token),
    # the gradients flowing through it (2*(3h + 2i)).
    per_layer = 2 * (9 * h + 4 * i) + 16 * h
    assert rows["activations (checkpointed)"].update == layers * tokens * h * 2 + tokens * per_layer + tokens * 2 * (
        3 * h + 2 * i
    )
    # bf16 logits and their gradient, plus three fp32 chunks of 2^26 logits.
    assert rows["logits"].update == 2 * tokens * vocab * 2 + 3 * 4 * 2**24
    assert rows["vLLM (in process)"].rollouts == int(0.35 * 80 * GIB) and rows["vLLM (in process)"].update == GIB
    assert result.rollouts == 14 * p + int(0.35 * 80 * GIB) + GIB
    assert (
        result.peak
        == result.update
        == 18 * p + rows["activations (checkpointed)"].update + rows["logits"].update + 2 * GIB
    )
    assert result.peak > 140 * GIB
    assert not result.fits
    assert result.checkpoint_bytes == 12 * p  # fp32 weights + AdamW


def test_lora_and_fsdp_divide_as_they_should():
    lora = parse_config({**OLD_PAPER, "grpo": {**OLD_PAPER["grpo"], "lora": {"rank": 64}}})
    result = plan(lora, gpus=1, gpu_memory="80GiB")
    # rank 64 on q, k, v, o, gate, up, down of 28 layers: 64 x (in + out) each.
    adapters = 28 * 64 * (2 * (3584 + 3584) + 2 * (3584 + 512) + 3 * (3584 + 18944))
    assert adapters == 161_480_704
    assert result.component("AdamW").update == 8 * adapters
    assert result.component("weights").update == 4 * (7_615_616_512 + adapters)
    assert all(not r.component.startswith("autocast") for r in result.rows)
    assert result.component("reference").update == 0  # the base with adapters off
    assert result.fits
    server = {**OLD_PAPER["vllm"], "server_url": "http://127.0.0.1:8000"}
    sharded = parse_config({**OLD_PAPER, "model": {"name": QWEN7B, "backend": "openai"}, "vllm": server})
    four = plan(sharded, gpus=4, gpu_memory="80GiB")
    assert four.component("AdamW").update == 8 * 7_615_616_512 // 4
    assert four.component("vLLM").rollouts == 0 and four.fits
    assert not plan(sharded, gpus=2, gpu_memory="80GiB").fits


def test_todays_paper_configs_are_refused_on_one_80gb_gpu(tmp_path, capsys):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(OLD_PAPER))
    assert main(["plan", "--config", str(path), "--gpus", "1", "--gpu-memory", "80GiB"]) == 1
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "reference model" in out
    # An H200 (141 GB) is not enough either.
    assert main(["plan", "--config", str(path), "--gpus", "1", "--gpu-memory", "141GB"]) == 1


@pytest.mark.parametrize("path", [*PAPER, ROOT / "docker" / "train-gpu.yaml"], ids=lambda p: p.stem)
def test_shipped_configs_name_their_hardware_and_fit_it(path, capsys):
    config = load_config(path)
    assert config.hardware is not None
    assert main(["plan", "--config", str(path)]) == 0
    assert "fits: peak" in capsys.readouterr().out
    if path in PAPER:
        assert config.hardware.gpus == 1 and config.hardware.gpu_memory_bytes == 80 * GIB
        assert config.model.name == QWEN7B and config.grpo.beta == 0.001  # still the paper's model and KL


def test_train_refuses_a_config_that_cannot_fit_before_loading_weights(tmp_path, monkeypatch, capsys):
    import gymwire.trainer.model as model
    import gymwire.trainer.train as train

    loaded = []
    monkeypatch.setattr(model, "resolve_model", lambda *a, **k: loaded.append("model"))
    monkeypatch.setattr(train, "train", lambda *a, **k: loaded.append("train"))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**OLD_PAPER, "hardware": {"gpus": 1, "gpu_memory": "80GiB"}}))
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "over the 80.0 GiB of 1 GPU" in err and "grpo.lora: {rank: 64}" in err
    assert loaded == []


def test_model_shape_from_a_config_file_and_unknown_models(tmp_path):
    config = parse_config({**OLD_PAPER, "model": {"name": "someone/unknown-model", "backend": "vllm"}})
    with pytest.raises(PlanError, match="--model-config"):
        plan(config, gpus=1, gpu_memory="80GiB")
    tiny = {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "tie_word_embeddings": True,
    }
    (tmp_path / "config.json").write_text(json.dumps(tiny))
    result = plan(config, gpus=1, gpu_memory="80GiB", model_config=tmp_path / "config.json")
    # embeddings 64k + 2 layers of (q 64x64, k/v 64x32 each, o 64x64, mlp 3 x 64x128, 2 norms) + final norm
    layer = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 2 * 64
    assert result.shape.params == 1000 * 64 + 2 * layer + 64 and result.fits
    # A model folder's own config.json is read the same way.
    assert model_shape(str(tmp_path)).params == result.shape.params


def test_memory_sizes():
    assert parse_memory("80GiB") == 80 * GIB and parse_memory("141GB") == 141 * 10**9
    assert parse_memory(24) == 24 * GIB and parse_memory("81559MiB") == 81559 * 2**20
    with pytest.raises(ValueError, match="not a size"):
        parse_memory("lots")
    with pytest.raises(ValueError, match="hardware.gpu_memory"):
        parse_config({**OLD_PAPER, "hardware": {"gpu_memory": "lots"}})
    with pytest.raises(ValueError, match="hardware.gpus"):
        parse_config({**OLD_PAPER, "hardware": {"gpus": 0}})


def test_the_plan_counts_the_log_softmax_chunk_the_update_uses():
    from gymwire.trainer import grpo_loss, memory_plan

    assert memory_plan.LOGSOFTMAX_CHUNK_BYTES == 4 * grpo_loss.LOGSOFTMAX_CHUNK_ELEMENTS
