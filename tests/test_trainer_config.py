"""Run configs: the three schedule kinds in one format; malformed configs name the bad key."""

from __future__ import annotations

import pytest
import yaml

from gymwire.trainer.config import ConfigError, load_config, parse_config

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
            {"name": "mixture", "steps": 3, "mix": [{"env": "webshop", "weight": 2},
                                                    {"env": "textcraft", "show_valid_actions": True}]},
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


@pytest.mark.parametrize(("patch", "message"), [
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
])
def test_malformed_config_names_the_key(patch, message):
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, **patch})
    assert message in str(err.value)


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("envs: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
