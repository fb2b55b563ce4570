"""The run config (`gymwire train --config run.yaml`): environments, model, stages, evaluation.

Curriculum (stages easy -> hard), sequential (env A -> env B) and mixture (several envs in one
stage) are the same format: a list of stages, each a weighted mix of (env, split, difficulty) for a
number of steps. Validation names the bad key with its full path, e.g. `stages[1].mix[0].wieght`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from gymwire.trainer.settings import (
    CheckpointConfig,
    EnvConfig,
    EvalSpec,
    GRPOConfig,
    HardwareConfig,
    LoRAConfig,
    RolloutConfig,
    VLLMConfig,
)


class ConfigError(ValueError):
    """The config is malformed; the message names the offending key."""


@dataclass(frozen=True, kw_only=True)
class MixEntry(EnvConfig):
    """Which tasks (env, split, difficulty, category) a stage draws, how often (weight), and the env's
    switches it plays them with: the entry is the env's EnvConfig, so rollouts take it as it is."""

    env: str
    split: str = "train"
    difficulty: str = ""
    category: str = ""
    weight: float = 1.0


@dataclass
class Stage:
    name: str
    steps: int
    mix: list[MixEntry]


@dataclass
class ModelConfig:
    name: str = "smollm2"  # "smollm2" (the embedded default), an HF folder, or a hub id in the local cache
    # What generates rollouts: hf (transformers, the live training model), vllm (an engine in this
    # process) or openai (a vLLM server at vllm.server_url, e.g. on other GPUs).
    backend: Literal["hf", "vllm", "openai"] = "hf"
    threads: int = 0  # torch threads (0: leave torch's default)


@dataclass
class WarmStartConfig:
    """Behaviour cloning on expert episodes before RL (the AgentGym recipe)."""

    episodes: int = 64
    epochs: int = 2
    learning_rate: float = 1e-4
    mix: list[MixEntry] = field(default_factory=list)  # empty: the first stage's mix


@dataclass(frozen=True)
class EvalConfig(EvalSpec):
    """The `eval:` section: the tasks `evaluate` plays (the config is its EvalSpec, drawn with the
    run's seed) and when and how the trainer runs it."""

    k: int = 8  # avg@k / pass@k samples (the paper: 8)
    envs: list[str] = field(default_factory=list)  # empty: every listed env
    every_steps: int = 0  # also evaluate inside a stage every N steps (0: only after stages)
    base: bool = True  # evaluate the model before training
    max_new_tokens: int | None = None  # default: rollout.max_new_tokens
    max_turns: int = 0  # 0: each env's turn limit from the stages (or its default); N: cap every env at N
    temperature: float = 1.0


@dataclass
class RunConfig:
    envs: dict[str, list[str]]  # env name -> addresses of its servers (replicas)
    stages: list[Stage]
    run_dir: str = "runs/run"
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)  # what the rollout engine takes
    grpo: GRPOConfig = field(default_factory=GRPOConfig)  # the updater's own config (trainer/settings.py)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)  # the engine's own settings
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    hardware: HardwareConfig | None = None  # the GPUs it is sized for (checked by `gymwire plan` / `train`)
    warm_start: WarmStartConfig | None = None
    eval: EvalConfig = field(default_factory=EvalConfig)
    save_rollouts: bool = True  # each step's episodes, token-exact with masks: rollouts/stage-S-step-N.jsonl
    token: str | None = None  # bearer token for servers started with --auth-token (default: $GYMWIRE_TOKEN)
    seed: int = 0
    # Where the metrics also go (trainer/trackers.py): tensorboard (<run_dir>/tensorboard), wandb, trackio.
    report_to: list[Literal["tensorboard", "wandb", "trackio"]] = field(default_factory=list)

    def addresses(self) -> list[str]:
        return [a for addresses in self.envs.values() for a in addresses]

    def eval_rollout(self) -> RolloutConfig:
        """Evaluation's rollouts: the run's, with evaluation's own turn budget and temperature."""
        return replace(
            self.rollout,
            max_new_tokens=self.eval.max_new_tokens or self.rollout.max_new_tokens,
            temperature=self.eval.temperature,
        )

    def eval_env_configs(self) -> dict[str, EnvConfig]:
        """Evaluation uses each env's turn limit from the stages (first mention wins), its action lists
        only where a stage trains with them, and the whole history; `eval.max_turns` caps every env."""
        configs: dict[str, EnvConfig] = {}
        for stage in self.stages:
            for entry in stage.mix:
                configs.setdefault(entry.env, replace(entry, history_turns=None))
        if self.eval.max_turns:
            return {env: replace(configs.get(env, EnvConfig()), max_turns=self.eval.max_turns) for env in self.envs}
        return configs


def env_configs(mix: Sequence[MixEntry]) -> dict[str, EnvConfig]:
    """Each env's switches in a mix: its entry itself (of several entries of one env, the last)."""
    return {entry.env: entry for entry in mix}


def _build(tp: Any, value: Any, path: str) -> Any:
    """`value` (parsed YAML) as an instance of type `tp`, or a ConfigError naming `path`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            if len(options) < len(typing.get_args(tp)):
                return None
            raise ConfigError(f"{path}: must not be empty")
        errors = []
        for option in options:
            try:
                return _build(option, value, path)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [_build(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        _, item = typing.get_args(tp)
        return {str(k): _build(item, v, f"{path}.{k}") for k, v in value.items()}
    if tp in (int, float):
        return _number(tp, value, path)
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}")


def _number(tp: type, value: Any, path: str) -> int | float:
    """A number as users write it. PyYAML reads YAML 1.1, where `1e-5` and `5e-7` (no dot) are strings,
    so numeric strings are parsed here; `.5` and `1_000` work too. Non-finite values are refused."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise ConfigError(f"{path}: expected {_describe(tp)} (a number such as 1e-5 or 16), got {value!r}")
    if tp is float:
        return float(number)
    if isinstance(number, float) and not number.is_integer():
        raise ConfigError(f"{path}: expected a whole number, got {value!r}")
    return int(number)


def _build_dataclass(tp: Any, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(value).__name__}")
    fields = {f.name: f for f in dataclasses.fields(tp)}
    hints = typing.get_type_hints(tp)
    unknown = sorted(set(value) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"{where}{unknown[0]}: unknown key; expected one of {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in value:
            kwargs[name] = _build(hints[name], value[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: required key is missing")
    try:
        return tp(**kwargs)
    except ValueError as exc:  # an engine's own rule (its __post_init__), e.g. "keep_last must be >= 1"
        message = str(exc)
        key = message.split()[0] if message else ""
        where = f"{path}.{key}" if key in fields else (path or "config")
        raise ConfigError(f"{where}: {message}") from None


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _normalise_envs(raw: Any) -> Any:
    """Accept `name: address` as well as `name: [address, ...]`."""
    if isinstance(raw, dict):
        return {k: [v] if isinstance(v, str) else v for k, v in raw.items()}
    return raw


def parse_config(data: dict[str, Any]) -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError("config: expected a mapping at the top level")
    data = dict(data)
    if "envs" in data:
        data["envs"] = _normalise_envs(data["envs"])
    if isinstance(data.get("report_to"), str):  # `report_to: tensorboard` as TRL takes it
        data["report_to"] = [] if data["report_to"] == "none" else [data["report_to"]]
    if isinstance(data.get("grpo"), dict) and "temperature" in data["grpo"]:
        raise ConfigError("grpo.temperature: set rollout.temperature; the update always uses the sampling one")
    if isinstance(data.get("eval"), dict) and "seed" in data["eval"]:
        raise ConfigError("eval.seed: set the run's seed; evaluation draws its tasks with it")
    config: RunConfig = _build(RunConfig, data, "")
    # The loss's log-probs must be of the distribution the sampler drew from.
    config.grpo.temperature = config.rollout.temperature
    config.eval = replace(config.eval, seed=config.seed)
    _check(config)
    return config


def load_config(path: str | Path) -> RunConfig:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data)


def _check(config: RunConfig) -> None:
    """Cross-field rules the types cannot say."""
    if not config.envs:
        raise ConfigError("envs: at least one environment address is needed")
    for name, addresses in config.envs.items():
        if not addresses:
            raise ConfigError(f"envs.{name}: needs at least one address")
    if not config.stages:
        raise ConfigError("stages: at least one stage is needed")
    names = set()
    for i, stage in enumerate(config.stages):
        if stage.name in names:
            raise ConfigError(f"stages[{i}].name: duplicate stage name {stage.name!r}")
        names.add(stage.name)
        if stage.steps < 0:
            raise ConfigError(f"stages[{i}].steps: must be >= 0")
        if not stage.mix:
            raise ConfigError(f"stages[{i}].mix: needs at least one entry")
        _check_mix(stage.mix, config, f"stages[{i}].mix")
    if config.warm_start is not None:
        _check_mix(config.warm_start.mix, config, "warm_start.mix")
    for i, env in enumerate(config.eval.envs):
        if env not in config.envs:
            raise ConfigError(f"eval.envs[{i}]: {env!r} is not one of envs ({', '.join(config.envs)})")
    if config.model.backend == "openai" and not config.vllm.server_url:
        raise ConfigError("vllm.server_url: model.backend openai needs the server's URL")
    if config.vllm.max_model_len < config.rollout.max_total_tokens and config.model.backend != "hf":
        raise ConfigError(
            f"vllm.max_model_len: {config.vllm.max_model_len} is below rollout.max_total_tokens "
            f"({config.rollout.max_total_tokens}); episodes would be cut by the engine"
        )
    if config.rollout.group_size < 2:
        raise ConfigError("rollout.group_size: GRPO needs at least 2 samples per task")
    from gymwire.trainer.trackers import missing

    problem = missing(config.report_to)
    if problem:
        raise ConfigError(f"report_to: {problem}")


def _check_mix(mix: list[MixEntry], config: RunConfig, path: str) -> None:
    for j, entry in enumerate(mix):
        if entry.env not in config.envs:
            raise ConfigError(f"{path}[{j}].env: {entry.env!r} is not one of envs ({', '.join(config.envs)})")
        if entry.weight <= 0:
            raise ConfigError(f"{path}[{j}].weight: must be > 0")


def scale_for_cpu(config: RunConfig, *, steps: int = 1, model: str = "smollm2") -> RunConfig:
    """The same experiment (envs, stages, mixes, switches) with tiny numbers for a CPU and the
    default model: what the test suite runs end to end for every config in configs/paper/."""
    cpu = copy.deepcopy(config)
    cpu.model = replace(config.model, name=model, backend="hf")
    cpu.rollout = replace(config.rollout, group_size=2, batch_tasks=1, max_new_tokens=12, max_total_tokens=2048)
    # The default model trains in fp32 on a CPU; engine and sharding settings stay as configured.
    cpu.grpo = replace(
        config.grpo,
        token_budget=4096,
        precision="fp32",
        gradient_checkpointing=True,  # same weights; a 4,096-token micro-batch otherwise keeps ~6 GB
        lora=LoRAConfig(),
        cpu_offload=False,
    )
    cpu.warm_start = None
    for stage in cpu.stages:
        stage.steps = min(stage.steps, steps)
        stage.mix = [replace(entry, max_turns=1) for entry in stage.mix]
    cpu.eval = replace(config.eval, tasks_per_env=1, k=2, max_new_tokens=12, max_turns=1, every_steps=0, base=True)
    return cpu
