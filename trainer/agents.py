"""Reference agents that need no model: the environment's own expert, and uniform random play.

They give the top and bottom rows of every evaluation table, and the expert's episodes are the
demonstrations for the behaviour-cloning warm start. Their turns use the ReAct format the
environments' instructions ask for, so a model cloned on them learns the same format.
"""

from __future__ import annotations

import random
import time

from gymwire.client import EnvPool, EpisodeAborted
from gymwire.trainer.rollout import EnvSettings, TaskRef, observation_text, step_record, task_info
from gymwire.trainer.types import Trajectory

NONSENSE_ACTION = "I am not sure what to do."


def react_turn(action: str, thought: str = "I will take the next step towards the goal.") -> str:
    return f"Thought: {thought}\nAction: {action}"


async def play_reference(pool: EnvPool, ref: TaskRef, kind: str, settings: EnvSettings = EnvSettings(),
                         seed: int = 0, group_id: str = "") -> Trajectory:
    """Play one episode with the expert ("oracle") or uniformly random valid actions ("random").

    The trajectory's messages hold the conversation as text (the env's instruction and observations
    as user turns, the agent's turns as assistant turns); it has no tokens.
    """
    if kind not in ("oracle", "random"):
        raise ValueError(f"unknown reference agent {kind!r}; use oracle or random")
    rng = random.Random(seed)
    episode = None
    trajectory = Trajectory(env=ref.env, task_id=ref.task_id, group_id=group_id or f"{kind}/{ref.task_id}")
    try:
        info = await pool.info(ref.env)
        episode = await pool.reset(ref.env, ref.task_id, include_valid_actions=settings.show_valid_actions,
                                   max_turns=settings.max_turns, stream=True)
        trajectory.info.update(task_info(episode.task))
        trajectory.messages = [{"role": "user",
                                "content": f"{info.instruction}\n\n{observation_text(episode.observation)}"}]
        while not episode.done:
            started = time.perf_counter()
            if kind == "oracle":
                turn = await episode.expert_action()
                if turn is None:
                    trajectory.info["reference_error"] = "the expert has no move"
                    break
                if "Action:" not in turn:  # a bare action: give it the turn format agents are asked for
                    turn = react_turn(turn)
            else:
                actions = await episode.valid_actions()
                turn = react_turn(rng.choice(actions) if actions else NONSENSE_ACTION)
            chosen = time.perf_counter()
            obs = await episode.step(turn)
            trajectory.add_step(step_record(trajectory.turns, obs, generate_s=chosen - started,
                                            step_s=time.perf_counter() - chosen))
            trajectory.messages.append({"role": "assistant", "content": turn})
            trajectory.turns += 1
            if obs.terminated or obs.truncated:
                trajectory.terminated, trajectory.truncated, trajectory.success = (obs.terminated, obs.truncated,
                                                                                   obs.success)
            else:
                trajectory.messages.append({"role": "user", "content": observation_text(obs)})
        await episode.close()
    except EpisodeAborted as exc:
        if episode is not None:
            await episode.close()
        trajectory.aborted = True
        trajectory.abort_reason = f"{exc.code.name}: {exc.message}"
    return trajectory
