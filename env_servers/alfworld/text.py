"""ALFWorld's replies, word for word, and the two wordings we serve.

Every sentence below is a rule of the wheel's grammar (`alfworld/data/alfred.twl2`; a test checks
each one against the installed file). The json_2.1.1 game files of ALFWorld 0.3, which AgentGym
serves, differ from it in three places (ALFWorld's patch script that brings them to 2.1.2 rewrites
exactly these, and adds `help`): placing is
`put <obj> in/on <recep>` with the reply `You put the <obj> in/on the <recep>.` (0.4:
`move <obj> to <recep>`, `You move the <obj> to the <recep>.`), `go to` replies start with
`You arrive at loc <k>.` (0.4: `You arrive at <recep>.`), and there is no `help`.

Wordings:
- `agentgym` (default): the 0.3 text after AgentGym's own post-processing, i.e. what AgentGym-trained
  agents read: the `-= Welcome to TextWorld, ALFRED! =-` banner is dropped and the room and the task
  are joined by one newline (AgentGym's reset does `"\\n".join(obs.split("\\n\\n")[1:])`), and the
  `You arrive at loc <k>. ` prefix of `go to` replies is cut (its `process_ob`), so a `go to` answers
  `On the countertop 1, you see ...` or `The fridge 1 is closed.`.
- `0.4`: ALFWorld 0.4's grammar: `move`, `You arrive at <recep>. ...`, `help`, and a blank line
  between the room and the task (banner dropped as well).
Both wordings accept both placing commands (`put X in/on Y`, `put X in Y`, `put X on Y`,
`move X to Y`); the valid-action list shows the wording's own form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NOTHING_HAPPENS = "Nothing happens."
TASK = "Your task is to: {goal}."
MIDDLE_OF_ROOM = "You are in the middle of a room. Looking quickly around you, you see {listing}."
FACING = "You are facing the {r}. Next to it, you see {listing}."
RECEPTACLE_OPEN = "The {r} is open. In it, you see {listing}."
RECEPTACLE_CLOSED = "The {r} is closed."
RECEPTACLE_SURFACE = "On the {r}, you see {listing}."
ARRIVE = "You arrive at {r}. "
OPEN = "You open the {r}. "
CLOSE = "You close the {r}."
TAKE = "You pick up the {o} from the {r}."
CARRYING = "You are carrying: {listing}."
CARRYING_NOTHING = "You are not carrying anything."
HEAT = "You heat the {o} using the {r}."
COOL = "You cool the {o} using the {r}."
CLEAN = "You clean the {o} using the {r}."
SLICE = "You sliced the {co} with the {ko}."
TURN_ON = "You turn on the {o}."
PUT_03 = "You put the {o} in/on the {r}."
PUT_04 = "You move the {o} to the {r}."
PUT_COMMAND_03 = "put {o} in/on {r}"
PUT_COMMAND_04 = "move {o} to {r}"

# examineObject: the first rule whose condition holds wins (order as in the grammar).
EXAMINE_RECEPTACLE_OBJECT = "This is a normal {o}. In it, you see {listing}."
EXAMINE_STATES: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"clean", "hot", "sliced"}), "This is a hot and clean sliced {o}."),
    (frozenset({"clean", "cool", "sliced"}), "This is a cool and clean sliced {o}."),
    (frozenset({"clean", "sliced"}), "This is a clean sliced {o}."),
    (frozenset({"hot", "sliced"}), "This is a hot sliced {o}."),
    (frozenset({"cool", "sliced"}), "This is a cool sliced {o}."),
    (frozenset({"clean", "hot"}), "This is a hot and clean {o}."),
    (frozenset({"clean", "cool"}), "This is a cool and clean {o}."),
    (frozenset({"hot"}), "This is a hot {o}."),
    (frozenset({"clean"}), "This is a clean {o}."),
    (frozenset({"cool"}), "This is a cold {o}."),
)
EXAMINE_LAMP_ON = "This {o} is on."
EXAMINE_LAMP_OFF = "This {o} is off."
EXAMINE_SLICED = "This is a sliced {o}."
EXAMINE_PLAIN = "There's nothing special about {o}."

HELP = (  # the grammar's rule starts with a newline, which the engine strips from every reply
    "Available commands:\n"
    "  look:                             look around your current location\n"
    "  inventory:                        check your current inventory\n"
    "  go to (receptacle):               move to a receptacle\n"
    "  open (receptacle):                open a receptacle\n"
    "  close (receptacle):               close a receptacle\n"
    "  take (object) from (receptacle):  take an object from a receptacle\n"
    "  move (object) to (receptacle):  place an object in or on a receptacle\n"
    "  examine (something):              examine a receptacle or an object\n"
    "  use (object):                     use an object\n"
    "  heat (object) with (receptacle):  heat an object using a receptacle\n"
    "  clean (object) with (receptacle): clean an object using a receptacle\n"
    "  cool (object) with (receptacle):  cool an object using a receptacle\n"
    "  slice (object) with (object):     slice an object using a sharp object\n"
)


def listing(names: Sequence[str]) -> str:
    """TextWorld's list: `nothing`, `a x`, `a x, and a y`, `a x, a y, and a z` (always `a`)."""
    items = [f"a {n}" for n in names]
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


@dataclass(frozen=True)
class Wording:
    name: str
    put_command: str
    put_reply: str
    arrive_prefix: bool  # `You arrive at <recep>. ` before a go-to reply
    intro_separator: str  # between the room description and `Your task is to: ...`
    has_help: bool

    def intro(self, room: str, goal: str) -> str:
        return room + self.intro_separator + TASK.format(goal=goal)


WORDINGS = {
    "agentgym": Wording("agentgym", PUT_COMMAND_03, PUT_03, arrive_prefix=False, intro_separator="\n", has_help=False),
    "0.4": Wording("0.4", PUT_COMMAND_04, PUT_04, arrive_prefix=True, intro_separator="\n\n", has_help=True),
}


def wording_named(name: str) -> Wording:
    try:
        return WORDINGS[name]
    except KeyError:
        raise ValueError(f"wording must be one of {sorted(WORDINGS)}, got {name!r}") from None
