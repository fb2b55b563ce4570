"""Run configs: the three schedule kinds in one format; malformed configs name the bad key."""

from __future__ import annotations

from dataclasses import asdict, fields

import pytest
import yaml

from gymwire.trainer.config import ConfigError, load_config, parse_config
from gymwire.trainer.settings import EvalSpec

BASE = {
    "envs": {"webshop": "127.0.0.1:1", "textcraft": ["127.0.0.1:2", "127.0.0.1:3"]},
    "stages": [{"name": "easy", "steps": 2, "mix": [{"env": "webshop", "difficulty": "easy"}]}],
}


def test_curriculum_sequential_and_mixture_are_one_format(tmp_path):
    config = {
        **BASE,
        "stages": [
            {"name": "webshop-easy", "steps": 3, "mix": [{"env": "webshop", "difficulty": "easy"}]},
            {"name": "webshop-hard", "steps": 3, "mix": [{"env": "webshop", "difficulty": "hard"}]},
            {"name": "then-textcraft", "steps": 3, "mix": [{"env": "textcraft", "max_turns": 30}]},
            {
                "name": "mixture",
                "steps": 3,
                "mix": [{"env": "webshop", "weight": 2}, {"env": "textcraft", "show_valid_actions": True}],
            },
        ],
        "rollout": {"group_size": 8, "batch_tasks": 16},
        "grpo": {"learning_rate": 1e-6, "beta": 0.001},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run = load_config(path)
    assert [s.name for s in run.stages] == ["webshop-easy", "webshop-hard", "then-textcraft", "mixture"]
    assert run.envs["webshop"] == ["127.0.0.1:1"] and len(run.envs["textcraft"]) == 2
    assert run.stages[3].mix[0].weight == 2.0 and run.stages[3].mix[1].show_valid_actions
    assert sorted(run.addresses()) == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"stages": [{"name": "a", "steps": 1, "mix": [{"env": "webshop", "wieght": 2}]}]}, "stages[0].mix[0].wieght"),
        ({"stages": [{"name": "a", "steps": 1, "mix": [{"env": "alfworld"}]}]}, "stages[0].mix[0].env"),
        ({"rollout": {"group_size": "eight"}}, "rollout.group_size"),
        ({"rollout": {"group_size": 1}}, "rollout.group_size"),
        ({"grpo": {"learning_rate": "fast"}}, "grpo.learning_rate"),
        ({"model": {"backend": "tpu"}}, "model.backend"),
        ({"grpo": {"loss_normalization": "episodes"}}, "grpo.loss_normalization"),
        ({"stages": []}, "stages"),
        ({"stages": [{"steps": 1, "mix": [{"env": "webshop"}]}]}, "stages[0].name"),
        ({"evaluation": {}}, "evaluation: unknown key"),
        ({"eval": {"envs": ["babyai"]}}, "eval.envs[0]"),
        ({"grpo": {"precision": "fp16"}}, "grpo.precision: 'fp16' is not one of auto, fp32, bf16-mixed, bf16"),
        ({"grpo": {"lora": {"rank": -1}}}, "grpo.lora.rank: rank must be >= 0"),
        ({"grpo": {"lora": {"target_modules": 3}}}, "grpo.lora.target_modules"),
        ({"grpo": {"dual_clip": 0.5}}, "grpo.dual_clip"),
        ({"grpo": {"temperature": 0.7}}, "grpo.temperature: set rollout.temperature"),
        ({"eval": {"seed": 3}}, "eval.seed: set the run's seed"),
        ({"grpo": {"importance_sampling": "sequence"}}, "grpo.importance_sampling"),
        ({"vllm": {"gpu_memory_utilization": 1.5}}, "vllm.gpu_memory_utilization"),
        ({"vllm": {"tensor_parallel_size": 0}}, "vllm.tensor_parallel_size"),
        ({"vllm": {"weight_sync": "ftp"}}, "vllm.weight_sync"),
        ({"model": {"backend": "vllm"}, "vllm": {"max_model_len": 1024}}, "vllm.max_model_len: 1024 is below"),
        ({"model": {"backend": "openai"}}, "vllm.server_url"),
        ({"checkpoint": {"keep_last": 0}}, "checkpoint.keep_last"),
        ({"checkpoint_every": 1}, "checkpoint_every: unknown key"),
    ],
)
def test_malformed_config_names_the_key(patch, message):
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, **patch})
    assert message in str(err.value)


def test_numbers_read_as_users_write_them(tmp_path):
    # PyYAML reads YAML 1.1: `1e-5` (no dot) is a string there, as in every HF and TRL config.
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump(BASE)
        + "grpo: {learning_rate: 1e-5, beta: 5e-7, epsilon: .5, token_budget: 1_000}\n"
        + "rollout: {group_size: 4, max_new_tokens: 1.6e2}\n"
    )
    run = load_config(path)
    assert run.grpo.learning_rate == 1e-5 and run.grpo.beta == 5e-7 and run.grpo.epsilon == 0.5
    assert run.grpo.token_budget == 1000 and run.rollout.max_new_tokens == 160
    assert isinstance(run.rollout.max_new_tokens, int)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"grpo": {"learning_rate": "1e-5x"}}, "grpo.learning_rate: expected float"),
        ({"grpo": {"learning_rate": ".nan"}}, "grpo.learning_rate"),
        ({"grpo": {"learning_rate": "inf"}}, "grpo.learning_rate"),
        ({"grpo": {"learning_rate": True}}, "grpo.learning_rate"),
        ({"rollout": {"max_new_tokens": 1.5}}, "rollout.max_new_tokens: expected a whole number"),
    ],
)
def test_what_is_not_a_number_is_refused(patch, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, **patch})


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("envs: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


EVERY_SETTING = {
    **BASE,
    "model": {"name": "smollm2", "backend": "vllm", "threads": 2},
    "rollout": {"temperature": 0.9, "max_total_tokens": 6144},
    "grpo": {
        "learning_rate": 2e-6,
        "beta": 0.01,
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "dual_clip": 3.0,
        "old_logprobs": "trainer",
        "importance_sampling": "token_mask",
        "importance_cap": 3.0,
        "warmup_steps": 5,
        "updates_per_step": 2,
        "token_budget": 8192,
        "precision": "bf16",
        "gradient_checkpointing": True,
        "cpu_offload": True,
        "adam_betas": [0.9, 0.95],
        "lora": {"rank": 16, "alpha": 64, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
    },
    "vllm": {
        "max_model_len": 8192,
        "gpu_memory_utilization": 0.4,
        "tensor_parallel_size": 2,
        "enable_sleep_mode": True,
        "dtype": "bfloat16",
        "enforce_eager": False,
        "max_num_seqs": 128,
        "enable_prefix_caching": True,
        "weight_sync": "memory",
        "engine_kwargs": {"swap_space": 0},
    },
    "checkpoint": {"every": 10, "keep_last": 3, "weights_only": True},
    "eval": {"envs": ["textcraft"], "difficulty": "hard", "category": "a,b", "tasks_per_env": 5, "k": 3},
    "seed": 11,
}


def test_every_engine_setting_reaches_its_engine_object():
    run = parse_config(EVERY_SETTING)
    g = run.grpo
    assert (g.epsilon_high, g.dual_clip, g.importance_sampling, g.importance_cap) == (0.28, 3.0, "token_mask", 3.0)
    assert (g.precision, g.gradient_checkpointing, g.cpu_offload, g.warmup_steps) == ("bf16", True, True, 5)
    assert (g.lora.rank, g.lora.alpha, g.lora.target_modules) == (16, 64, ["q_proj", "v_proj"])
    assert g.adam_betas == [0.9, 0.95] and g.updates_per_step == 2 and g.token_budget == 8192
    assert g.temperature == 0.9  # the sampling temperature, so the loss's log-probs are of the sampled p
    assert (run.checkpoint.every, run.checkpoint.keep_last, run.checkpoint.weights_only) == (10, 3, True)
    # The eval section is the EvalSpec evaluate() takes, drawing its tasks with the run's seed.
    assert isinstance(run.eval, EvalSpec)
    assert asdict(EvalSpec(["textcraft"], "test", "hard", "a,b", 5, 3, 11)) == {
        f.name: getattr(run.eval, f.name) for f in fields(EvalSpec)
    }
    on_gpu = run.vllm.engine_args(on_cpu=False)
    assert on_gpu == {
        "dtype": "bfloat16",
        "enforce_eager": False,
        "max_model_len": 8192,
        "tensor_parallel_size": 2,
        "logprobs_mode": "processed_logprobs",
        "gpu_memory_utilization": 0.4,
        "enable_sleep_mode": True,
        "max_num_seqs": 128,
        "enable_prefix_caching": True,
        "swap_space": 0,
    }
    on_cpu = parse_config({**BASE, "vllm": {}}).vllm.engine_args(on_cpu=True)
    assert on_cpu["dtype"] == "float32" and on_cpu["enforce_eager"] is True and "gpu_memory_utilization" not in on_cpu


def test_paper_configs_fit_their_engines():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parent.parent / "configs" / "paper").glob("*.yaml")):
        run = load_config(path)
        assert run.vllm.max_model_len >= run.rollout.max_total_tokens, path.name
        assert run.grpo.precision == "bf16-mixed" and run.grpo.gradient_checkpointing, path.name


RENAMED = [
    ("gymwire.trainer.settings", "LoRASettings", "LoRAConfig"),
    ("gymwire.trainer.settings", "VLLMSettings", "VLLMConfig"),
    ("gymwire.trainer.settings", "CheckpointSettings", "CheckpointConfig"),
    ("gymwire.trainer.settings", "HardwareSettings", "HardwareConfig"),
    ("gymwire.trainer.grpo", "LoRASettings", "LoRAConfig"),
    ("gymwire.trainer.rollout", "EnvSettings", "EnvConfig"),
]


@pytest.mark.parametrize(("module", "old", "new"), RENAMED)
def test_old_config_names_still_import_and_warn(module, old, new):
    import importlib

    namespace = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{module}.{old} is deprecated .*; use {new}"):
        assert getattr(namespace, old) is getattr(namespace, new)
    with pytest.raises(AttributeError, match="has no attribute 'VLLMSetings'"):
        namespace.VLLMSetings  # noqa: B018
