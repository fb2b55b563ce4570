"""BabyAI as a text environment: minigrid's levels, AgentGym's observation text and macro actions.

One episode owns one minigrid level instance. Each turn the agent's text is parsed into one macro,
the macro runs as primitive minigrid steps (so minigrid's own reward, `1 - 0.9 * steps / max_steps`
on success, counts every primitive), and the new view is described. Switches keep AgentGym's quirks
available without making them the default.

Signals in `info`: `primitive_steps`, `step_count`, `max_steps`, and `step_limit` when minigrid's own
step budget ran out. No `committed`/`verified` (the SDK's commit signals): the only failing ends
are strict levels' wrong pickups or doors, where the object's colour and type were already in the
view the agent read, so there is no separate check whose absence would tell anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import numpy as np

from gymwire.env_servers.babyai.bot import Oracle
from gymwire.env_servers.babyai.levels import make_level
from gymwire.env_servers.babyai.macros import CHECK, Menu, Plan, build_menu, execute, extract_action
from gymwire.env_servers.babyai.tasks import DEFAULT_TEST_SEED_START, TaskScheme, parse_task_id
from gymwire.env_servers.babyai.text_view import View, describe, observe
from gymwire.env_servers.babyai.turn_limits import BASE_MAX_TURNS, MAX_TURNS_LIMIT
from gymwire.env_servers.babyai.world_state import world_state
from gymwire.env_servers.sdk import EnvDescription, Environment, Episode, StepOutcome, Task, TaskCatalogue, UnknownTask
from gymwire.env_servers.sdk.state_keys import hash_state

VERSION = "1.0.0"
COMPLETED = "The task is completed."
FAILED = "The task has failed."
OUT_OF_STEPS = "You have used up the steps allowed for this task."
ALREADY_OVER = "The task is already over. Nothing happens."

ACTION_GRAMMAR = (
    "turn left | turn right | move forward | go to <color> <type> <k> | pickup <color> <type> <k> | drop | "
    "toggle | go through <color> open door <k> | toggle and go through <color> closed|locked door <k> | "
    "go to goal | check available actions.  <k> numbers objects of one name, nearest first, as in the "
    "observation. The action is the text after the last 'Action:' (the whole turn without one), first line, "
    "case-insensitive, trailing punctuation ignored."
)

INSTRUCTION = """\
You are an agent in a grid world of rooms, doors and objects (keys, balls and boxes), and you see only \
the cells in front of you. Each observation tells you your goal, the objects you can see, nearest first, \
with their distance in steps ahead of you and to your left or right, the wall or obstacle you are \
facing, and what you carry. Reach the goal in as few steps as possible.

Objects are named by color and type, and numbered when several share a name: "red ball 1", \
"grey key 2", doors as "blue closed door 1" (a door is open, closed or locked).

Actions:
- turn left / turn right: turn on the spot.
- move forward: step one cell ahead.
- go to <color> <type> <k>: walk until you face that object.
- pickup <color> <type> <k>: walk to that key, ball or box and pick it up (you carry at most one thing).
- drop: put what you carry on the empty cell in front of you.
- toggle: open or close the door, or open the box, in front of you (a locked door opens only while \
you carry a key of its color).
- go through <color> open door <k>: walk through that open door.
- toggle and go through <color> closed door <k> (or locked door): walk to that door, open it, walk through.
- go to goal: walk onto the goal square.
- check available actions: list the actions possible right now.

Answer every turn in this form, with exactly one action:
Thought: <your reasoning>
Action: <action>"""


class BabyAIEpisode(Episode):
    """One (level, seed) episode; deterministic given them."""

    def __init__(
        self,
        level: str,
        seed: int,
        *,
        actions_in_text: bool = False,
        agentgym_done_quirk: bool = False,
        agentgym_mission_wording: bool = False,
    ):
        self.level, self.seed = level, seed
        self.env = make_level(level)
        self._actions_in_text = actions_in_text
        self._done_quirk = agentgym_done_quirk
        self._mission_wording = agentgym_mission_wording
        self.known = np.zeros((0, 0), dtype=bool)  # cells the agent has seen, set at reset
        self._view: View | None = None
        self._menu: Menu | None = None
        self._oracle: Oracle | None = None
        self.over = False  # the minigrid episode has ended (success, failure or step limit)
        self.succeeded = False
        self._reported_done = False

    # -- state ---------------------------------------------------------------------------------
    def look(self) -> View:
        """Re-read the agent's view (also after the world was edited from outside, as tests do)."""
        view = observe(self.env)
        self.known |= view.visible
        self._view, self._menu = view, None
        return view

    def menu(self) -> Menu:
        if self._menu is None:
            assert self._view is not None, "reset() first"
            self._menu = build_menu(self.env, self._view, self.known)
        return self._menu

    @property
    def mission(self) -> str:
        mission = self.env.mission
        if self._mission_wording:  # AgentGym rewrites sequence words (losing the order "after you" implies)
            mission = re.sub(r"\bthen\b", "and", mission).replace("after you", "and")
        return mission

    def _with_actions(self, text: str) -> str:
        if not self._actions_in_text:
            return text
        return f"{text}\nAvailable actions: {json.dumps(self.valid_actions())}"

    # -- Episode API -----------------------------------------------------------------------------
    def reset(self) -> str:
        self.env.reset(seed=self.seed)
        self.known = np.zeros((self.env.width, self.env.height), dtype=bool)
        self._oracle, self.over, self.succeeded, self._reported_done = None, False, False, False
        view = self.look()
        return self._with_actions(f"Your goal: {self.mission}\n{describe(self.env, view)}")

    def step(self, text: str) -> StepOutcome:
        action = extract_action(text)
        if self.over:  # the SDK stops at `terminated`; the done quirk can keep a finished episode open
            return StepOutcome(
                self._with_actions(ALREADY_OVER),
                terminated=self._reported_done,
                success=self.succeeded,
                action_valid=False,
                parsed_action=action,
            )
        menu = self.menu()
        if action == CHECK:
            listed = "You can take the following actions: " + ", ".join(menu.plans)
            return StepOutcome(self._with_actions(listed), parsed_action=action)
        plan = menu.plans.get(action)
        if plan is None:
            reply = menu.reply_for_invalid(action)
            return StepOutcome(self._with_actions(reply), action_valid=False, parsed_action=action)
        return self._run(action, plan)

    def valid_actions(self) -> list[str]:
        return [] if self.over else list(self.menu().plans)

    def state_key(self) -> str:
        over = [self.over, self.succeeded, self._reported_done]
        return hash_state({**world_state(self.env, self.known), "over": over})

    def expert_action(self) -> str | None:
        if self.over:
            return None
        if self._oracle is None:
            self._oracle = Oracle(self.env, self.known)
        assert self._view is not None
        return self._oracle.suggest(self._view, self.menu())

    # -- running a macro -----------------------------------------------------------------------
    def _primitive(self, action: int) -> tuple[float, bool, bool]:
        _, reward, terminated, truncated, _ = self.env.step(action)
        self.known |= observe(self.env).visible
        if self._oracle is not None:
            self._oracle.observe(action)
        return float(reward), bool(terminated), bool(truncated)

    def _run(self, action: str, plan: Plan) -> StepOutcome:
        """Execute a macro's primitives and describe where it left the agent."""
        result = execute(self.env, plan, self._primitive)
        reward, steps, terminated, truncated = result.reward, result.steps, result.terminated, result.truncated
        view = self.look()
        text = describe(self.env, view)
        ended = terminated or truncated
        if ended:
            self.over = True
            self.succeeded = terminated and reward > 0
            text += "\n" + (COMPLETED if self.succeeded else FAILED if terminated else OUT_OF_STEPS)
        report_done = ended and not (self._done_quirk and reward <= 0.5)
        self._reported_done = report_done
        info = {
            "primitive_steps": steps,
            "step_count": int(self.env.step_count),
            "max_steps": int(self.env.max_steps),
        }
        if truncated:
            info["step_limit"] = True
        return StepOutcome(
            self._with_actions(text),
            reward=reward,
            terminated=report_done,
            success=self.succeeded,
            parsed_action=action,
            info=info,
        )


class BabyAIEnvironment(Environment):
    """The BabyAI text environment.

    Args:
        tiers: tier name -> level short names (default: easy = one-room levels, hard = the rest of
            AgentGym's 40 minus the two the oracle cannot solve).
        tasks_per_level: split -> number of listed seeds per level (default train 50, test 10).
        test_seed_start: seeds from here on are the test split; below it, train.
        actions_in_text: append `Available actions: [...]` to every observation, as AgentGym does.
        agentgym_done_quirk: report a finished episode whose reward is <= 0.5 as not done (AgentGym);
            later turns then change nothing.
        agentgym_mission_wording: rewrite "then" and "after you" in the goal to "and", as AgentGym does.
    """

    def __init__(
        self,
        *,
        tiers: Mapping[str, Sequence[str]] | None = None,
        tasks_per_level: Mapping[str, int] | None = None,
        test_seed_start: int = DEFAULT_TEST_SEED_START,
        actions_in_text: bool = False,
        agentgym_done_quirk: bool = False,
        agentgym_mission_wording: bool = False,
    ):
        self.scheme = TaskScheme(tiers, tasks_per_level, test_seed_start)
        self._episode_options = {
            "actions_in_text": actions_in_text,
            "agentgym_done_quirk": agentgym_done_quirk,
            "agentgym_mission_wording": agentgym_mission_wording,
        }
        self._catalogue: TaskCatalogue | None = None

    def describe(self) -> EnvDescription:
        return EnvDescription(
            name="babyai",
            version=VERSION,
            description="BabyAI grid-world levels (minigrid) as text, with AgentGym's observations and macro actions.",
            instruction=INSTRUCTION,
            action_grammar=ACTION_GRAMMAR,
            provides_valid_actions=True,
            provides_expert=True,
            default_max_turns=BASE_MAX_TURNS,  # a task of a surveyed level states its own limit (turn_limits.py)
            max_turns_limit=MAX_TURNS_LIMIT,
        )

    def catalogue(self) -> TaskCatalogue:
        if self._catalogue is None:
            self._catalogue = TaskCatalogue(self.scheme.listing(), resolver=self.scheme.resolve)
        return self._catalogue

    def start(self, task: Task) -> BabyAIEpisode:
        parsed = parse_task_id(task.id)
        if parsed is None:
            raise UnknownTask(task.id)
        level, seed = parsed
        return BabyAIEpisode(level, seed, **self._episode_options)
