"""The oracle: minigrid's BabyAIBot, with its plan expressed in the macro grammar.

The bot plans in primitive actions and must see every primitive the agent takes (it re-plans after
each, DAgger style), so the oracle is kept in step with the episode. To keep demonstrations short,
advice is a macro whenever one provably helps: candidates name what the bot's own run reaches (an
object it picks up, a door it opens or walks through, the object it ends facing), and each candidate
is simulated on a copy of the world followed by the bot's run to success. Otherwise the advice is the
bot's next primitive (`turn left`, `move forward`, `pickup <object in front>`, `drop`, `toggle`).

minigrid's bot can re-plan forever on some states; here it has a search budget per replan, and a bot
that fails is rebuilt from what the agent has seen. Where the bot alone cannot succeed, there is no
guarantee and the advice may run out (None); `solvable.py` keeps such tasks out of the listing.
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np
from minigrid.core.world_object import Door
from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel
from minigrid.utils.baby_ai_bot import BabyAIBot

from gymwire.env_servers.babyai.macros import Menu, Plan, execute
from gymwire.env_servers.babyai.pathing import DONE, DROP, FORWARD, LEFT, PICKUP, RIGHT, TOGGLE, front_of
from gymwire.env_servers.babyai.text_view import View

log = logging.getLogger(__name__)

MOVES = (LEFT, RIGHT, FORWARD)
SEARCHES_PER_REPLAN = 200  # a normal replan needs a handful; the known infinite loops need unboundedly many
MAX_CANDIDATES = 6  # macros tried per advice, each checked by simulating the bot to success
EXTRA_STEPS_SHARE = 0.02  # extra primitive steps a macro may cost, as a share of max_steps (reward -1.8%)


class BotGaveUp(RuntimeError):
    """The bot exceeded its search budget for one replan (it was looping)."""


class BoundedBot(BabyAIBot):
    """BabyAIBot with a search budget per replan and a linear-time breadth-first search.

    The stock search pops from the front of a list (quadratic: seconds per replan on big levels)
    and some states make `replan` loop forever; both would stall a server thread.
    """

    def __init__(self, mission: RoomGridLevel, budget: int = SEARCHES_PER_REPLAN):
        self._budget = budget
        self._searches = 0
        super().__init__(mission)

    def replan(self, action_taken: int | None = None) -> int:
        self._searches = 0
        return super().replan(action_taken)

    def _breadth_first_search(self, initial_states, accept_fn, ignore_blockers):
        """Same visiting order and result as BabyAIBot's search, with a deque."""
        self._searches += 1
        if self._searches > self._budget:
            raise BotGaveUp(f"more than {self._budget} searches in one replan")
        self.bfs_counter += 1
        grid = self.mission.unwrapped.grid
        queue = deque((state, None) for state in initial_states)
        previous_pos: dict[tuple[int, int], tuple[int, int] | None] = {}
        while queue:
            (i, j, di, dj), prev_pos = queue.popleft()
            if (i, j) in previous_pos:
                continue
            self.bfs_step_counter += 1
            cell = grid.get(i, j)
            previous_pos[(i, j)] = prev_pos
            if accept_fn((i, j), cell):
                path, pos = [], (i, j)
                while pos:
                    path.append(pos)
                    pos = previous_pos[pos]
                return path, (i, j), previous_pos
            if not self.vis_mask[i, j]:
                continue
            if cell is not None:
                if cell.type == "wall" or (cell.type == "door" and not cell.is_open):
                    continue
                if cell.type != "door" and not ignore_blockers:
                    continue
            # Straight on first, then the sides, then back: slightly prefers not turning.
            for ni, nj in ((di, dj), (dj, di), (-dj, -di), (-di, -dj)):
                queue.append(((i + ni, j + nj, ni, nj), (i, j)))
        return None, None, previous_pos


_Bot = TypeVar("_Bot", BoundedBot, None)


@dataclass(frozen=True)
class Step:
    """One primitive of a simulated bot run, and where it left the agent."""

    action: int
    pos: tuple[int, int]
    direction: int


@dataclass
class Rollout:
    """The bot's own run from some state to success: its primitives in order."""

    steps: list[Step]

    def __len__(self) -> int:
        return len(self.steps)


def _pose(env: RoomGridLevel) -> tuple[int, int, int]:
    return int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir)


def _fingerprint(env: RoomGridLevel) -> tuple:
    """Identifies a world state: clock, pose, what is carried, every cell (doors and objects included)."""
    carrying = None if env.carrying is None else (env.carrying.type, env.carrying.color)
    return int(env.step_count), _pose(env), carrying, env.grid.encode().tobytes()


def _simulation(env: RoomGridLevel, bot: _Bot) -> tuple[RoomGridLevel, _Bot]:
    """A private copy of the world and the bot; its steps skip rendering the observation nobody reads."""
    env, bot = copy.deepcopy((env, bot))
    # The bot reads the grid itself; replacing the method on this private copy only is intended.
    env.gen_obs = lambda: None  # type: ignore[method-assign]
    return env, bot


def roll_out(env: RoomGridLevel, bot: BoundedBot, suggestion: int | None, limit: int) -> Rollout | None:
    """Let the bot act alone on (a copy of) the world; its run if it succeeds within `limit` steps."""
    steps: list[Step] = []
    while len(steps) < limit and suggestion is not None:
        _, reward, terminated, truncated, _ = env.step(suggestion)
        x, y, d = _pose(env)
        steps.append(Step(suggestion, (x, y), d))
        if terminated or truncated:
            return Rollout(steps) if terminated and reward > 0 else None
        suggestion = bot.replan(suggestion)
    return None


class Oracle:
    """Expert advice for one episode; call `observe` after every primitive step the episode takes.

    Let R be the number of primitive steps the bot, acting alone, still needs to succeed. Its own
    next step leaves R - 1. A macro is advised only if, simulated, it leaves at most R - 2 (the most
    progress among the candidates) and, with the bot's run after it, costs at most EXTRA_STEPS_SHARE
    of the level's step limit more than the bot's run from here. R falls every turn, so following the
    advice reaches the goal whenever the bot alone would, whatever path the macros take.
    """

    def __init__(self, env: RoomGridLevel, known: np.ndarray):
        self._env = env
        self._known = known  # the episode's seen-cells mask (shared, updated by the episode)
        self._bot: BoundedBot | None = None
        self._next: int | None = None
        self._expected: tuple[tuple, Rollout] | None = None  # the bot's run from a state we predicted
        self._fresh()

    def _fresh(self) -> None:
        """A new bot that knows what the agent has seen; it re-derives the plan from the mission."""
        self._expected = None
        try:
            bot = BoundedBot(self._env)
            bot.vis_mask |= self._known
            self._next = bot.replan()
            self._bot = bot
        except Exception as exc:  # the bot asserts on states it cannot plan for
            log.debug("oracle: fresh bot failed: %r", exc)
            self._bot, self._next = None, None

    def observe(self, action: int) -> None:
        """Tell the bot which primitive was taken, so that it re-plans from the new state."""
        if self._bot is None:
            return
        try:
            self._next = self._bot.replan(action)
        except Exception as exc:
            log.debug("oracle: bot lost track after action %d: %r", action, exc)
            self._bot, self._next = None, None

    def _state_key(self, env: RoomGridLevel | None = None) -> tuple:
        return _fingerprint(env or self._env), id(self._bot)

    def _baseline(self) -> Rollout | None:
        """The bot's own run from now (reused when the previous advice predicted this state)."""
        if self._expected is not None and self._expected[0] == self._state_key():
            return self._expected[1]
        assert self._bot is not None  # suggest() runs the bot only when there is one
        env, bot = _simulation(self._env, self._bot)
        return roll_out(env, bot, self._next, int(self._env.max_steps))

    def suggest(self, view: View, menu: Menu) -> str | None:
        """The next action as grammar text, or None when the bot has no valid advice."""
        if self._bot is None:
            self._fresh()
        if self._bot is None or self._next is None:
            return None
        try:
            baseline = self._baseline()
        except Exception as exc:
            log.debug("oracle: baseline run failed: %r", exc)
            baseline = None
        primitive = self._primitive_text(self._next, view)
        if primitive not in menu.plans:
            primitive = None
        self._expected = None
        if baseline is None:  # the bot itself would not succeed from here: best-effort primitive advice
            return primitive
        slack = int(EXTRA_STEPS_SHARE * self._env.max_steps)
        best: tuple[int, int, str, tuple] | None = None  # (bot steps left, macro steps, action, prediction)
        candidates = [c for c in self._candidates(baseline, view) if c in menu.plans]
        for candidate in candidates[:MAX_CANDIDATES]:
            # Worth it only if it leaves less than the bot's own next step would (len - 1), or than
            # the best macro so far, and costs at most `slack` more primitive steps overall.
            most_left = len(baseline) - 2 if best is None else best[0]
            outcome = self._after_macro(menu.plans[candidate], most_left, len(baseline) + slack)
            if outcome is None:
                continue
            macro_steps, key, rest = outcome
            if best is None or (len(rest), macro_steps) < best[:2]:
                best = (len(rest), macro_steps, candidate, (key, rest))
        if best is not None:
            self._expected = best[3]
            return best[2]
        if primitive is not None:  # following the bot's own step leaves the rest of its run unchanged
            env, _ = _simulation(self._env, None)
            env.step(self._next)
            self._expected = (self._state_key(env), Rollout(baseline.steps[1:]))
        return primitive

    def _after_macro(self, plan: Plan, most_left: int, total: int) -> tuple[int, tuple, Rollout] | None:
        """Run `plan` then the bot on a copy: macro steps, resulting state and the bot's run from there,
        if the bot then needs at most `most_left` steps and macro plus bot at most `total`."""
        try:
            assert self._bot is not None  # suggest() runs the bot only when there is one
            env, bot = _simulation(self._env, self._bot)
            suggestion: list[int | None] = [self._next]

            def step(primitive: int) -> tuple[float, bool, bool]:
                _, reward, terminated, truncated, _ = env.step(primitive)
                if not (terminated or truncated):
                    suggestion[0] = bot.replan(primitive)
                return float(reward), bool(terminated), bool(truncated)

            result = execute(env, plan, step)
            if result.terminated or result.truncated:
                done = result.terminated and result.reward > 0 and result.steps <= total
                return (result.steps, (), Rollout([])) if done else None
            limit = min(most_left, total - result.steps)
            if limit <= 0:
                return None
            rest = roll_out(env, bot, suggestion[0], limit)
        except Exception as exc:
            log.debug("oracle: simulated macro failed: %r", exc)
            return None
        return None if rest is None else (result.steps, self._state_key(env), rest)

    def _candidates(self, baseline: Rollout, view: View) -> list[str]:
        """Macros naming what the bot's run reaches, in order: objects it picks up, toggles or ends
        facing, and open doors it walks through (only things in view now)."""
        found: list[str] = []
        pose = _pose(self._env)
        last = len(baseline) - 1
        for index, step in enumerate(baseline.steps):
            target = view.at(front_of(*pose))
            if step.action in MOVES:
                door = view.at(step.pos)
                if door is not None and door.obj.type == "door" and cast(Door, door.obj).is_open:
                    found.append(f"go through {door.label}")
                pose = (*step.pos, step.direction)
                ahead = view.at(front_of(*pose))
                if index == last and ahead is not None:
                    found.append(f"go to {ahead.label}")
            elif target is not None:
                if step.action == PICKUP:
                    found.append(f"pickup {target.label}")
                elif step.action == TOGGLE and target.obj.type == "door" and not cast(Door, target.obj).is_open:
                    found += [f"toggle and go through {target.label}", f"go to {target.label}"]
                elif step.action in (TOGGLE, DONE):
                    found.append(f"go to {target.label}")
        return list(dict.fromkeys(found))

    def _primitive_text(self, action: int, view: View) -> str | None:
        if action == LEFT:
            return "turn left"
        if action == RIGHT:
            return "turn right"
        if action == FORWARD:
            return "move forward"
        if action == DROP:
            return "drop"
        if action == TOGGLE:
            return "toggle"
        ahead = view.at(front_of(*_pose(self._env)))
        if action == PICKUP and ahead is not None:
            return f"pickup {ahead.label}"
        if action == DONE and ahead is not None:  # the bot thinks it is done: a no-op step lets minigrid verify
            return f"go to {ahead.label}"
        return None
