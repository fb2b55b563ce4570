"""gymwire servers as environments of verl (0.9): an agent loop and the advantage estimator it needs.

verl runs one agent loop per sample on its AgentLoopWorkers; the loop asks verl's server manager
(`LLMServerClient.generate`: token ids in, token ids and log-probs out, routed to verl's vLLM or
SGLang replicas) for each turn. `GymwireAgentLoop` (registered as `gymwire_agent`) plays one gymwire
episode per sample with gymwire's own episode loop, so the conversation is token-exact, and returns
verl's `AgentLoopOutput`:

- `prompt_ids`: the conversation up to the model's first turn;
- `response_ids`: everything after it, `response_mask` 1 exactly on the tokens the model sampled
  (the environment's replies and the template's framing are 0), `response_logprobs` the sampler's;
- `reward_score`: the episode's return, as the server scored it; `num_turns`: the chat's messages;
- `extra_fields["min_global_steps"/"max_global_steps"]`: the oldest and newest weight versions that
  sampled the episode, which verl's V1 trainer keeps as tags and reads for its staleness metrics.

verl trains `prompt_ids` plus at most `rollout.response_length` tokens after them, so everything after
the opening prompt is played within that budget: no turn the model sampled (and the reward earned by
it) is ever cut from what verl trains. Under verl's asynchronous trainers a weight update aborts the
requests in flight (stop reason "aborted", the tokens sampled so far): the loop resumes that turn from
those tokens instead of taking the fragment as the model's answer.

An episode that infrastructure aborts (its server died, its session was lost) is played again on
another replica (`abort_retries`). If it still cannot be played its response mask is all 0 (none of
its tokens is trained on) and `extra_fields["gymwire_aborted"]` is 1. verl's own GRPO would still count
its reward (0.0) in its group's baseline; the advantage estimator `gymwire_grpo` (registered here,
`algorithm.adv_estimator: gymwire_grpo`) leaves such samples out of the baseline.

Turn-level credit (GiGPO, as `grpo: {advantage: turn}` trains it: trainer/turn_credit.py):
`algorithm.adv_estimator: gymwire_gigpo`. It needs each turn's anchor state and reward, which every
sample carries in `extra_fields` (`gymwire_anchors`, `gymwire_turn_rewards`, one entry per sampled run
of its response mask). verl 0.9.1 hands a registered estimator only `token_level_rewards`,
`response_mask`, the `uid`s and the algorithm config, and its V1 trainer's advantage step
(`PPOTrainer._compute_advantage`) reads only its own fields from TransferQueue; so `setup()` wraps that
step: under `gymwire_gigpo` alone it first reads the batch's turns for the estimator, and every other
estimator runs untouched. verl's legacy trainer (`use_v1: false`) is not wrapped: there the estimator
refuses, and `compute_turn_advantage(data)` computes the same advantages from its batch.

verl's trainer imports this module in its Ray workers through
`ray_kwargs.ray_init.runtime_env.worker_process_setup_hook: gymwire.integrations.verl.setup`; the stage
launcher sets it, and the estimator from the run config's `grpo.advantage`.

Which servers: the agent-loop YAML (`actor_rollout_ref.rollout.agent.agent_loop_config_path`) names
them, e.g.

    - name: gymwire_agent
      _target_: gymwire.integrations.verl.GymwireAgentLoop
      servers: {webshop: ["webshop-0:50051", "webshop-1:50051"], textcraft: ["textcraft:50051"]}

Which tasks: each dataset row (`verl_stages.stage_rows`) names its task and environment settings in
`extra_info.gymwire`. `python -m gymwire.integrations.verl_stages` turns a gymwire run config's stages
into those datasets and successive verl runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    _agent_loop_registry,
)
from verl.trainer.ppo.core_algos import register_adv_est

from gymwire.client import EnvPool
from gymwire.trainer.policy.base import Policy, WeightsSource
from gymwire.trainer.rollout import (
    Conversation,
    NoTurn,
    PolicyTurns,
    RolloutConfig,
    RolloutEngine,
)
from gymwire.trainer.sequence import ConversationBuilder, end_of_turn_ids
from gymwire.trainer.turn_credit import GIGPO_GAMMA, GIGPO_WEIGHT, turn_advantages
from gymwire.trainer.types import Generation, SamplingParams, StepRecord, Trajectory

from .episodes import episode_settings, episode_tokens, parse_task_key, server_addresses
from .verl_stages import ADVANTAGE_ESTIMATOR, AGENT_NAME, TURN_ADVANTAGE_ESTIMATOR

ABORTED = ("aborted", "abort")  # a replica's stop reason for a request cut short by a weight update


class ServerManagerPolicy(Policy):
    """verl's server manager as a gymwire policy: each turn is one `generate` call, routed by verl
    (sticky per episode, so a replica's prefix cache holds the conversation). A turn that a weight
    update aborts is resumed from the tokens it kept, as one turn sampled across weight versions."""

    def __init__(
        self,
        server_manager: Any,
        tokenizer: Any,
        sampling_params: Mapping[str, Any],
        request_id: str,
        *,
        resume_delay_s: float = 1.0,
        max_idle_resumes: int = 600,
    ):
        self.server_manager = server_manager
        self.tokenizer = tokenizer
        self.name = "verl"
        self.stop_token_ids = end_of_turn_ids(tokenizer)
        self.sampling_params = dict(sampling_params)
        self.request_id = request_id
        self.resume_delay_s = resume_delay_s
        self.max_idle_resumes = max_idle_resumes
        self.versions: list[int] = []  # the replicas' global_steps (weight versions) of every answer
        self.resumed = 0  # turns continued after an abort

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        self.check_request(prompt_ids, params)
        if params.max_new_tokens < 1:
            return Generation(token_ids=[], logprobs=[], text="", finish_reason="length")
        ids: list[int] = []
        logprobs: list[float] = []
        idle = 0
        while True:
            sampling = {
                **self.sampling_params,
                "max_tokens": params.max_new_tokens - len(ids),
                "stop_token_ids": self.stop_token_ids,
            }
            output = await self.server_manager.generate(
                request_id=self.request_id, prompt_ids=[*prompt_ids, *ids], sampling_params=sampling
            )
            new = list(output.token_ids)
            ids += new
            logprobs += list(output.log_probs) if output.log_probs else [0.0] * len(new)
            self._record_versions(output.extra_fields or {})
            done = len(ids) >= params.max_new_tokens or any(t in self.stop_token_ids for t in new)
            if output.stop_reason not in ABORTED or done:
                break
            self.resumed += 1
            idle = 0 if new else idle + 1
            if idle > self.max_idle_resumes:
                raise RuntimeError(f"the rollout replicas aborted one turn {idle} times in a row without a token")
            if not new:  # rejected while its replica updates weights: wait instead of spinning
                await asyncio.sleep(self.resume_delay_s)
        return self.make_generation(ids, logprobs, params.max_new_tokens)

    def _record_versions(self, extra_fields: Mapping[str, Any]) -> None:
        # verl's clients set min/max_global_steps (its fully-async client across its own resumes);
        # a replica alone reports global_steps.
        for key in ("min_global_steps", "max_global_steps", "global_steps"):
            if extra_fields.get(key) is not None:
                self.versions.append(int(extra_fields[key]))

    def update_weights(self, source: WeightsSource) -> None:
        raise NotImplementedError("verl syncs its rollout replicas' weights itself")


class ResponseBudgetTurns(PolicyTurns):
    """The policy's turns, with the conversation after the opening prompt held to `response_length`
    tokens: verl trains at most that many, and a turn cut from them would still carry its reward."""

    def __init__(self, policy: Policy, sampling: SamplingParams, response_length: int) -> None:
        super().__init__(policy, sampling)
        self.response_length = response_length

    async def next_turn(self, episode: Any, conversation: Conversation) -> Generation | NoTurn:
        if isinstance(conversation, ConversationBuilder):
            # The opening prompt is known only now; the builder then keeps every later token (turns,
            # replies, template framing) inside the budget.
            limit = conversation.prompt_length + self.response_length
            if conversation.max_total_tokens is None or conversation.max_total_tokens > limit:
                conversation.max_total_tokens = limit
        return await super().next_turn(episode, conversation)


class VerlRolloutEngine(RolloutEngine):
    """gymwire's rollout engine with the response budget above; each attempt of an episode starts
    its weight-version record afresh (an attempt that infrastructure aborted is not trained)."""

    def __init__(self, *args: Any, response_length: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.response_length = response_length

    def turns(self, sampling: SamplingParams) -> PolicyTurns:
        # verl samples with its own settings (no per-episode seed); a new episode starts a new version record.
        if isinstance(self.policy, ServerManagerPolicy):
            self.policy.versions.clear()
        return ResponseBudgetTurns(self.policy, self.config.sampling, self.response_length)


class _Pools:
    """One connected EnvPool per server list and event loop, shared by every agent loop of a
    worker: verl builds a new agent loop object per sample, connections must outlive them."""

    def __init__(self) -> None:
        # Per event loop (a pool's channels belong to the loop that opened them), forgotten with it.
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ...], EnvPool]] = (
            weakref.WeakKeyDictionary()
        )
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    async def get(self, addresses: Sequence[str]) -> EnvPool:
        loop = asyncio.get_running_loop()
        pools = self._pools.setdefault(loop, {})
        async with self._locks.setdefault(loop, asyncio.Lock()):
            if tuple(addresses) not in pools:
                pools[tuple(addresses)] = await EnvPool(addresses).connect()
        return pools[tuple(addresses)]


_POOLS = _Pools()


class GymwireAgentLoop(AgentLoopBase):
    """One gymwire episode per verl sample (see the module's docstring)."""

    def __init__(
        self,
        *args: Any,
        servers: Any = None,
        max_turn_tokens: int = 0,
        abort_retries: int = 2,
        system_prompt: str | None = None,
        resume_delay_s: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not servers:
            raise ValueError(f"the {AGENT_NAME} agent loop needs `servers` in its agent-loop config")
        self.addresses = server_addresses(servers)
        self.abort_retries = int(abort_retries)
        self.system_prompt = system_prompt
        self.prompt_length = int(self.rollout_config.prompt_length)
        self.response_length = int(self.rollout_config.response_length)
        # New tokens per turn (0: the whole response budget); everything after the opening prompt
        # fits response_length either way.
        self.max_turn_tokens = int(max_turn_tokens) or self.response_length
        self.resume_delay_s = float(resume_delay_s)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        spec = dict((kwargs.get("extra_info") or {}).get("gymwire") or {})
        ref = parse_task_key(spec.get("task") or _last_message(kwargs.get("raw_prompt")))
        pool = await _POOLS.get(self.addresses)
        policy = ServerManagerPolicy(
            self.server_manager,
            self.tokenizer,
            sampling_params,
            uuid.uuid4().hex,
            resume_delay_s=self.resume_delay_s,
        )
        config = RolloutConfig(
            max_new_tokens=self.max_turn_tokens,
            temperature=float(sampling_params.get("temperature", 1.0)),
            top_p=float(sampling_params.get("top_p", 1.0)),
            max_total_tokens=self.prompt_length + self.response_length,
            abort_retries=self.abort_retries,
            system_prompt=self.system_prompt,
        )
        engine = VerlRolloutEngine(
            pool, policy, config, {ref.env: episode_settings(spec)}, response_length=self.response_length
        )
        started = time.perf_counter()
        trajectory = await engine.episode(ref, group_id=str(kwargs.get("uid", "")))
        # Without a version from the replicas (none answered, or one that does not report it), the
        # batch's own step stands in: verl's V1 trainer needs an integer for every sample.
        versions = policy.versions or [_plain_int(kwargs.get("global_steps"))]
        output = agent_loop_output(
            trajectory,
            self.response_length,
            filler_id=policy.stop_token_ids[0],
            started=started,
            retries=engine.stats.aborted_retried,
            global_steps=(min(versions), max(versions)),
            resumed=policy.resumed,
        )
        # As verl's own loops do: a prompt over rollout.prompt_length keeps its last tokens.
        output.prompt_ids = self._cap_text_prompt_length(output.prompt_ids)
        return output


# Registered under its name unless an agent-loop YAML already did (with the servers): verl imports this
# module while instantiating that YAML's entry, and verl's `register` would overwrite the entry.
_agent_loop_registry.setdefault(AGENT_NAME, {"_target_": f"{__name__}.GymwireAgentLoop"})


def agent_loop_output(
    trajectory: Trajectory,
    response_length: int,
    *,
    filler_id: int,
    started: float,
    retries: int = 0,
    global_steps: tuple[int, int] = (0, 0),
    resumed: int = 0,
) -> AgentLoopOutput:
    """verl's output for one episode. The response is cut at `response_length` as verl's own loops
    do; a turn that the cut reaches (only an episode not played within that budget has one) takes
    its reward, and every later one, out of the episode's return."""
    tokens = episode_tokens(trajectory, filler_id)
    kept = kept_turns(trajectory, response_length)
    reward = None if tokens.reward is None else sum(s.reward for s in trajectory.steps[:kept])
    success = trajectory.success and kept == len(trajectory.steps)
    generate_s = sum(s.generate_s for s in trajectory.steps)
    step_s = sum(s.step_s for s in trajectory.steps)
    mask = tokens.response_mask[:response_length]
    anchors, turn_rewards = response_turns(trajectory, mask, kept)
    return AgentLoopOutput(
        prompt_ids=tokens.prompt_ids,
        response_ids=tokens.response_ids[:response_length],
        response_mask=mask,
        response_logprobs=tokens.response_logprobs[:response_length],
        reward_score=0.0 if reward is None else float(reward),
        num_turns=len(trajectory.messages),
        metrics=AgentLoopMetrics(generate_sequences=generate_s, tool_calls=step_s),
        extra_fields={
            "gymwire_aborted": int(tokens.aborted),
            "gymwire_retries": retries,  # attempts aborted by infrastructure and played again
            "gymwire_resumed": resumed,  # turns continued after a weight update aborted them
            "gymwire_cut_turns": len(trajectory.steps) - kept,
            "gymwire_success": int(success),
            "gymwire_env": trajectory.env,
            "turn_scores": [s.reward for s in trajectory.steps],
            # One entry per sampled run of response_mask, for turn-level credit (compute_turn_advantage).
            "gymwire_anchors": anchors,
            "gymwire_turn_rewards": turn_rewards,
            "tool_rewards": [],
            "gymwire_seconds": time.perf_counter() - started,
            # The weight versions the episode was sampled with: verl's V1 trainer tags each sample
            # with them and builds integer arrays from them for its staleness metrics.
            "min_global_steps": int(global_steps[0]),
            "max_global_steps": int(global_steps[1]),
        },
    )


def response_turns(trajectory: Trajectory, response_mask: Sequence[int], kept: int) -> tuple[list[str], list[float]]:
    """The anchor and reward of each turn with tokens in the response, one per run of 1s in its mask; a
    turn the response length cuts (the `kept` turns are whole) keeps its anchor, its reward is 0 as in the
    episode's reward_score."""
    runs = len(runs_of_ones(response_mask))
    turns = [(i, s) for i, s in enumerate(trajectory.steps) if s.generated_tokens > 0][:runs]
    return [s.anchor for _, s in turns], [s.reward if i < kept else 0.0 for i, s in turns]


def kept_turns(trajectory: Trajectory, response_length: int) -> int:
    """How many of the episode's turns lie wholly within its first `response_length` response tokens."""
    start = trajectory.prompt_length
    sampled = sum(trajectory.loss_mask[start : start + response_length])
    kept, used = 0, 0
    for step in trajectory.steps:
        used += step.generated_tokens
        if used > sampled:
            break
        kept += 1
    return kept


def _plain_int(value: Any) -> int:
    """A batch field as an int: verl passes scalars plain, as numpy values or as 0-d arrays."""
    if value is None:
        return 0
    return int(value.item() if hasattr(value, "item") else value)


def _last_message(raw_prompt: Any) -> str:
    if isinstance(raw_prompt, str):
        return raw_prompt
    messages: Iterable[Any] = raw_prompt if raw_prompt is not None else []
    contents = [m.get("content", "") for m in messages if isinstance(m, Mapping)]
    if not contents:
        raise ValueError("a gymwire sample needs extra_info.gymwire.task or a prompt holding the task key")
    return str(contents[-1])


@register_adv_est(ADVANTAGE_ESTIMATOR)
def gymwire_grpo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    epsilon: float = 1e-6,
    config: Any = None,
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's GRPO outcome advantage, except that a sample with no trained token (an episode no replica
    could finish: its response mask is all 0) is left out of its group's mean and std and gets advantage
    0, so an infrastructure fault never enters training as a reward of 0."""
    normalise = True if config is None else bool(config.get("norm_adv_by_std_in_grpo", True))
    scores = token_level_rewards.sum(dim=-1)
    trained = response_mask.sum(dim=-1) > 0
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, key in enumerate(index):
        if trained[i]:
            groups[key].append(i)
    advantages = torch.zeros_like(scores)
    with torch.no_grad():
        for members in groups.values():
            group = scores[members]
            if len(members) == 1:  # as verl's GRPO: a lone sample is its own baseline-free advantage
                mean, std = torch.tensor(0.0), torch.tensor(1.0)
            else:
                mean, std = group.mean(), group.std()
            advantage = group - mean
            advantages[members] = advantage / (std + epsilon) if normalise else advantage
    advantages = advantages.unsqueeze(-1) * response_mask
    return advantages, advantages


@register_adv_est(TURN_ADVANTAGE_ESTIMATOR)
def gymwire_turn_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    epsilon: float = 1e-6,
    config: Any = None,
    anchors: Any = None,
    turn_rewards: Any = None,
    gamma: float = GIGPO_GAMMA,
    weight: float = GIGPO_WEIGHT,
    turn_masks: Any = None,
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GiGPO's advantage per token (trainer/turn_credit.py: the episode's group-relative return plus
    `weight` x the turn's discounted return relative to the group's turns from the same anchor state),
    each sampled run of a response mask being one turn. `anchors` and `turn_rewards`: per sample, one
    entry per run (the `gymwire_anchors` and `gymwire_turn_rewards` of its extra fields); verl passes neither,
    so inside V1's advantage step (`setup()` wraps it) they are those of the batch being computed. The runs
    are those of `turn_masks` (per sample, the mask the agent loop returned; default `response_mask`), so
    tokens that verl's rollout correction rejected split no turn: they only get advantage 0. A sample with no
    trained token is left out, as by gymwire_grpo; the episode's return is its token_level_rewards' sum."""
    if anchors is None or turn_rewards is None:
        anchors, turn_rewards, turn_masks = _batch_turns(index)
    normalise = True if config is None else bool(config.get("norm_adv_by_std_in_grpo", True))
    scores = token_level_rewards.sum(dim=-1)
    masks = response_mask.tolist() if turn_masks is None else turn_masks
    runs = [runs_of_ones(list(row)) for row in masks]
    episodes: list[Trajectory] = []
    for i, key in enumerate(index):
        if len(anchors[i]) != len(runs[i]) or len(turn_rewards[i]) != len(runs[i]):
            raise ValueError(
                f"sample {i}: {len(anchors[i])} anchors and {len(turn_rewards[i])} turn rewards for "
                f"{len(runs[i])} sampled runs in its response mask"
            )
        steps = [
            StepRecord(k, "", True, float(r), False, False, anchor=str(a))
            for k, (a, r) in enumerate(zip(anchors[i], turn_rewards[i], strict=True))
        ]
        episodes.append(
            Trajectory(env="", task_id="", group_id=str(key), reward=float(scores[i]), steps=steps, aborted=not runs[i])
        )
    adv = turn_advantages(episodes, gamma=gamma, weight=weight, scale_rewards=normalise, eps=epsilon)
    row = {id(t): i for i, t in enumerate(episodes)}
    advantages = torch.zeros_like(token_level_rewards, dtype=torch.float32)
    for traj, per_turn in zip(adv.trajectories, adv.turn_advantages, strict=True):
        i = row[id(traj)]
        for (start, end), value in zip(runs[i], per_turn, strict=True):
            advantages[i, start:end] = value
    advantages = advantages * response_mask
    return advantages, advantages


def compute_turn_advantage(
    data: Any, config: Any = None, *, gamma: float = GIGPO_GAMMA, weight: float = GIGPO_WEIGHT
) -> Any:
    """verl's advantage step for `gymwire_gigpo`: a DataProto (token_level_rewards, response_mask, and the
    uid, gymwire_anchors and gymwire_turn_rewards of its non_tensor_batch) gets `advantages` and `returns`."""
    batch, extra = data.batch, data.non_tensor_batch
    for key in ("uid", "gymwire_anchors", "gymwire_turn_rewards"):
        if key not in extra:
            raise KeyError(f"non_tensor_batch has no {key!r}: were the samples played by the {AGENT_NAME} loop?")
    advantages, returns = gymwire_turn_advantage(
        batch["token_level_rewards"],
        batch["response_mask"],
        extra["uid"],
        config=config,
        anchors=extra["gymwire_anchors"],
        turn_rewards=extra["gymwire_turn_rewards"],
        gamma=gamma,
        weight=weight,
    )
    batch["advantages"], batch["returns"] = advantages, returns
    return data


def runs_of_ones(mask: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) of each run of non-zero entries."""
    runs, start = [], None
    for i, m in enumerate([*mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    return runs


class _BatchTurns(NamedTuple):
    uids: list[str]
    anchors: list[list[str]]
    turn_rewards: list[list[float]]
    response_masks: list[list[int]]  # as the agent loop returned them, before any rejection


# The turns of the batch whose advantages V1's trainer is computing, for gymwire_gigpo (set around the call).
_TURNS: contextvars.ContextVar[_BatchTurns | None] = contextvars.ContextVar("gymwire_batch_turns", default=None)


def _batch_turns(index: Any) -> tuple[list[list[str]], list[list[float]], list[list[int]]]:
    turns = _TURNS.get()
    if turns is None:
        raise ValueError(
            f"the {TURN_ADVANTAGE_ESTIMATOR} advantage needs each sample's turn anchors and rewards, which verl "
            "does not pass to a registered estimator: run gymwire.integrations.verl.setup() in the trainer's "
            "process (the worker_process_setup_hook) for verl's V1 trainer, or call "
            "gymwire.integrations.verl.compute_turn_advantage(data) in the trainer's advantage step"
        )
    if [str(u) for u in index] != turns.uids:
        raise ValueError(
            f"{TURN_ADVANTAGE_ESTIMATOR}: the advantage step's samples are not the {len(turns.uids)} samples "
            "whose turns were read for it"
        )
    return turns.anchors, turns.turn_rewards, turns.response_masks


def _with_batch_turns(compute_advantage: Any) -> Any:
    """V1's `PPOTrainer._compute_advantage`, which under gymwire_gigpo first reads the batch's turns from
    TransferQueue (the extra fields the agent loop returned): verl reads only its own fields there."""

    @functools.wraps(compute_advantage)
    def wrapped(self: Any, batch: Any, metrics: dict) -> Any:
        if self.config.algorithm.adv_estimator != TURN_ADVANTAGE_ESTIMATOR:
            return compute_advantage(self, batch, metrics)
        import transfer_queue as tq

        fields = ["uid", "extra_fields", "response_mask"]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        extras = [getattr(e, "data", e) for e in data["extra_fields"].tolist()]
        missing = [key for key, e in zip(batch.keys, extras, strict=True) if "gymwire_anchors" not in e]
        if missing:
            raise KeyError(f"samples {missing[:3]} have no gymwire_anchors: were they played by the {AGENT_NAME} loop?")
        turns = _BatchTurns(
            [str(u) for u in data["uid"].tolist()],
            [list(e["gymwire_anchors"]) for e in extras],
            [list(e["gymwire_turn_rewards"]) for e in extras],
            [row.tolist() for row in data["response_mask"]],
        )
        token = _TURNS.set(turns)
        try:
            return compute_advantage(self, batch, metrics)
        finally:
            _TURNS.reset(token)

    wrapped.gymwire_batch_turns = True  # type: ignore[attr-defined]
    return wrapped


def setup() -> None:
    """Ray's `worker_process_setup_hook`: importing this module registers the agent loop and the
    advantage estimators in every Ray worker, the trainer's driver actor among them; and V1's advantage
    step is wrapped so that `gymwire_gigpo` gets each sample's turns (every other estimator runs as is)."""
    try:
        from verl.trainer.ppo.v1.trainer_base import PPOTrainer
    except ImportError:  # no V1 trainer (its TransferQueue is not installed): gymwire_gigpo refuses, saying why
        return
    if not getattr(PPOTrainer._compute_advantage, "gymwire_batch_turns", False):
        PPOTrainer._compute_advantage = _with_batch_turns(PPOTrainer._compute_advantage)  # type: ignore[method-assign]
