"""The gymwire.v1 conformance suite: every rule of the contract, checked against a live server.

Each rule is a function that talks raw gRPC to the server (no gymwire client logic in between, so
a server in any language is judged by the wire alone) and raises `Violation` with a readable reason.
`gymwire check ADDRESS` runs them all and exits 0 only when none fails.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gymwire.v1 import environment_pb2 as pb
from gymwire.v1 import environment_pb2_grpc as pb_grpc

SERVICE = "gymwire.v1.EnvironmentService"
DEFAULT_MESSAGE_LIMIT = 4 * 1024 * 1024  # gRPC's default for received messages, which most clients keep


class Violation(AssertionError):
    """The server broke a rule of the contract."""


class Skipped(Exception):
    """The rule does not apply to this server (e.g. it provides no expert)."""


@dataclass
class Probe:
    """What a rule gets: a channel, a stub, the server's info and the suite's settings."""

    address: str
    channel: grpc.Channel
    stub: pb_grpc.EnvironmentServiceStub
    info: pb.GetInfoResponse
    metadata: tuple[tuple[str, str], ...] | None
    timeout: float
    capacity_limit: int
    sessions: list[str] = field(default_factory=list)

    def call(self, method: str, request, timeout: float | None = None):
        return getattr(self.stub, method)(request, timeout=timeout or self.timeout, metadata=self.metadata)

    def expect_code(self, code: grpc.StatusCode, method: str, request, what: str) -> grpc.RpcError:
        try:
            self.call(method, request)
        except grpc.RpcError as exc:
            if exc.code() != code:
                raise Violation(f"{what}: expected {code.name}, got {exc.code().name} ({exc.details()})") from None
            if not exc.details():
                raise Violation(f"{what}: {code.name} without a message; errors must say what went wrong") from None
            return exc
        raise Violation(f"{what}: expected {code.name}, but the call succeeded")

    def first_task(self) -> pb.Task:
        reply = self.call("ListTasks", pb.ListTasksRequest(page_size=1))
        if not reply.tasks:
            raise Violation("ListTasks returned no task at all")
        return reply.tasks[0]

    def reset(self, task_id: str | None = None, **options) -> pb.ResetResponse:
        reply = self.call(
            "Reset", pb.ResetRequest(task_id=task_id or self.first_task().id, options=pb.ResetOptions(**options))
        )
        self.sessions.append(reply.session_id)
        return reply

    def step(self, session_id: str, action: str, step_index: int | None = None) -> pb.Observation:
        request = pb.StepRequest(session_id=session_id, action=action)
        if step_index is not None:
            request.step_index = step_index
        return self.call("Step", request).observation

    def close_all(self) -> None:
        for sid in self.sessions:
            try:
                self.call("Close", pb.CloseRequest(session_id=sid))
            except grpc.RpcError:
                pass
        self.sessions.clear()


Rule = Callable[[Probe], None]
RULES: list[tuple[str, Rule]] = []


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES.append((name, fn))
        return fn

    return register


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Violation(message)


NONSENSE = "xyzzy plugh qwfp 12345"


# --- discovery -------------------------------------------------------------------------------


@rule("health service says SERVING")
def _health(p: Probe) -> None:
    reply = health_pb2_grpc.HealthStub(p.channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=p.timeout)
    check(reply.status == health_pb2.HealthCheckResponse.SERVING, f"health status is {reply.status}, not SERVING")


@rule("server reflection lists the service")
def _reflection(p: Probe) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    try:
        services = ProtoReflectionDescriptorDatabase(p.channel).get_services()
    except grpc.RpcError as exc:
        raise Violation(f"reflection unavailable: {exc.code().name}") from None
    check(SERVICE in services, f"reflection lists {list(services)}, not {SERVICE}")


@rule("GetInfo is complete and consistent")
def _info(p: Probe) -> None:
    i, f = p.info, p.info.features
    check(re.fullmatch(r"[a-z0-9_-]+", i.name) is not None, f"name {i.name!r} must match [a-z0-9_-]+")
    check(i.protocol_version.split(".")[0] == "1", f"protocol_version {i.protocol_version!r} is not 1.x")
    check(bool(i.env_version), "env_version is empty")
    check(bool(i.instruction.strip()), "instruction is empty: trainers need the env's own prompt")
    check(bool(i.action_grammar.strip()), "action_grammar is empty")
    check(0 < f.default_max_turns <= f.max_turns_limit, "need 0 < default_max_turns <= max_turns_limit")
    check(f.reward_min <= f.reward_max, "reward_min > reward_max")
    check(f.max_action_bytes > 0 and f.max_sessions > 0, "max_action_bytes and max_sessions must be positive")
    c = i.catalogue
    check(bool(c.splits) and bool(c.difficulties), "catalogue needs at least one split and one difficulty")
    for n in c.counts:
        check(
            n.split in c.splits and n.difficulty in c.difficulties,
            f"catalogue count ({n.split}, {n.difficulty}) names an undeclared split or difficulty",
        )


# --- tasks -----------------------------------------------------------------------------------


@rule("ListTasks pages are complete, stable and filtered")
def _list_tasks(p: Probe) -> None:
    c = p.info.catalogue
    split, difficulty = c.splits[0], c.difficulties[0]
    expected = sum(n.count for n in c.counts if n.split == split and n.difficulty == difficulty)

    def all_pages() -> list[pb.Task]:
        out, token = [], ""
        for _ in range(10_000):
            page = p.call(
                "ListTasks", pb.ListTasksRequest(split=split, difficulty=difficulty, page_size=7, page_token=token)
            )
            check(len(page.tasks) <= 7, f"page of {len(page.tasks)} tasks exceeds page_size 7")
            out.extend(page.tasks)
            token = page.next_page_token
            if not token or len(out) >= 70:
                return out
        raise Violation("ListTasks never returned an empty next_page_token")

    first, second = all_pages(), all_pages()
    check([t.id for t in first] == [t.id for t in second], "two listings returned different orders")
    check(len({t.id for t in first}) == len(first), "duplicate task ids across pages")
    check(all(t.split == split and t.difficulty == difficulty for t in first), "a task does not match the filters")
    total = p.call("ListTasks", pb.ListTasksRequest(split=split, difficulty=difficulty, page_size=1)).total_size
    check(total == expected or not c.counts, f"total_size {total} differs from the catalogue's count {expected}")


@rule("ListTasks rejects a foreign page_token")
def _bad_token(p: Probe) -> None:
    p.expect_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        "ListTasks",
        pb.ListTasksRequest(page_token="not-a-token!"),
        "ListTasks with a made-up page_token",
    )


@rule("Reset of the same task gives the same first observation")
def _reset_deterministic(p: Probe) -> None:
    task = p.first_task()
    a, b = p.reset(task.id), p.reset(task.id)
    check(a.session_id != b.session_id, "two Resets returned the same session id")
    check(a.observation.text == b.observation.text, "the same task id gave different first observations")
    o = a.observation
    check(
        o.turn == 0 and o.reward == 0 and not o.terminated and not o.truncated,
        "first observation must have turn 0, reward 0, not terminated/truncated",
    )
    check(a.task.id == task.id, f"ResetResponse.task.id {a.task.id!r} is not the requested {task.id!r}")


@rule("Reset by sample is deterministic in its seed")
def _reset_sample(p: Probe) -> None:
    c = p.info.catalogue
    sample = pb.TaskSample(split=c.splits[0], difficulty=c.difficulties[0], seed=12345)
    ids = []
    for _ in range(2):
        reply = p.call("Reset", pb.ResetRequest(sample=sample))
        p.sessions.append(reply.session_id)
        ids.append(reply.task.id)
    check(ids[0] == ids[1], f"seed 12345 sampled {ids[0]!r} then {ids[1]!r}")


@rule("Reset of an unknown task is INVALID_ARGUMENT")
def _reset_unknown(p: Probe) -> None:
    p.expect_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        "Reset",
        pb.ResetRequest(task_id="no-such-task-\u2603-0"),
        "Reset of an unknown task id",
    )
    p.expect_code(grpc.StatusCode.INVALID_ARGUMENT, "Reset", pb.ResetRequest(), "Reset with no target")


@rule("Reset beyond max_turns_limit is INVALID_ARGUMENT")
def _reset_turn_limit(p: Probe) -> None:
    limit = p.info.features.max_turns_limit
    request = pb.ResetRequest(task_id=p.first_task().id, options=pb.ResetOptions(max_turns=limit + 1))
    p.expect_code(grpc.StatusCode.INVALID_ARGUMENT, "Reset", request, f"Reset with max_turns {limit + 1}")


# --- steps -----------------------------------------------------------------------------------


@rule("Step on an unknown session is NOT_FOUND")
def _unknown_session(p: Probe) -> None:
    p.expect_code(
        grpc.StatusCode.NOT_FOUND,
        "Step",
        pb.StepRequest(session_id="no-such-session", action="look"),
        "Step on an unknown session",
    )
    p.expect_code(
        grpc.StatusCode.NOT_FOUND,
        "ValidActions",
        pb.ValidActionsRequest(session_id="no-such-session"),
        "ValidActions on an unknown session",
    )


@rule("an empty or nonsense action is an observation, not an error")
def _bad_actions(p: Probe) -> None:
    sid = p.reset(max_turns=p.info.features.max_turns_limit).session_id
    for i, action in enumerate(("", NONSENSE)):
        o = p.step(sid, action, i)
        check(not o.action_valid, f"action {action!r} was reported valid")
        check(bool(o.text.strip()), f"the observation after {action!r} is empty: say what went wrong")
        check(o.turn == i + 1, f"turn is {o.turn} after {i + 1} steps")


@rule("an oversized action is INVALID_ARGUMENT and the session survives")
def _oversized(p: Probe) -> None:
    sid = p.reset(max_turns=p.info.features.max_turns_limit).session_id
    too_long = "a" * (p.info.features.max_action_bytes + 1)
    p.expect_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        "Step",
        pb.StepRequest(session_id=sid, action=too_long),
        f"Step with {len(too_long)} bytes",
    )
    o = p.step(sid, NONSENSE, 0)
    check(o.turn == 1, f"after a rejected oversized step, the next step reports turn {o.turn}, not 1")


@rule("replies fit the default 4 MiB message limit, and errors stay short whatever the input")
def _reply_sizes(p: Probe) -> None:
    # A reply or an error over gRPC's default limits reaches the client as a transport failure
    # (RESOURCE_EXHAUSTED), never as the answer: pages must shrink and messages must cut input short.
    check(p.info.ByteSize() <= DEFAULT_MESSAGE_LIMIT, f"GetInfo is {p.info.ByteSize()} bytes")
    page = p.call("ListTasks", pb.ListTasksRequest(page_size=2**31 - 1))
    check(page.ByteSize() <= DEFAULT_MESSAGE_LIMIT, f"a ListTasks page of {page.ByteSize()} bytes")
    check(bool(page.tasks), "ListTasks with the largest page_size returned no task")
    first = p.reset(include_valid_actions=p.info.features.provides_valid_actions)
    size = first.ByteSize()
    check(size <= DEFAULT_MESSAGE_LIMIT, f"a ResetResponse of {size} bytes")
    huge = "z" * 30_000
    calls = [
        ("Step", pb.StepRequest(session_id=huge, action=NONSENSE), grpc.StatusCode.NOT_FOUND),
        ("Reset", pb.ResetRequest(task_id=huge), grpc.StatusCode.INVALID_ARGUMENT),
        ("ListTasks", pb.ListTasksRequest(page_token=huge), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for method, request, code in calls:
        error = p.expect_code(code, method, request, f"{method} with a 30,000-character id")
        check(len(error.details()) <= 4096, f"{method}'s error repeats {len(error.details())} characters of input")
    filtered = p.call("ListTasks", pb.ListTasksRequest(split="s" * 100_000, page_size=1))
    check(not filtered.tasks, "ListTasks with a 100 KB split that no task has returned tasks")


@rule("non-UTF-8 action bytes are rejected or invalid, and the session survives")
def _non_utf8(p: Probe) -> None:
    sid = p.reset(max_turns=p.info.features.max_turns_limit).session_id
    # Hand-encode a StepRequest: field 1 (session_id), field 2 (action) with invalid UTF-8 bytes.
    sid_bytes, bad = sid.encode(), b"\xff\xfe\xc3("
    raw = bytes([0x0A, len(sid_bytes)]) + sid_bytes + bytes([0x12, len(bad)]) + bad
    step = p.channel.unary_unary(
        f"/{SERVICE}/Step", request_serializer=lambda b: b, response_deserializer=pb.StepResponse.FromString
    )
    advanced = 0
    try:
        reply = step(raw, timeout=p.timeout, metadata=p.metadata)
        check(not reply.observation.action_valid, "non-UTF-8 action bytes were reported as a valid action")
        advanced = 1
    except grpc.RpcError as exc:
        check(
            exc.code() == grpc.StatusCode.INVALID_ARGUMENT,
            f"non-UTF-8 action: expected INVALID_ARGUMENT or an invalid-action observation, got {exc.code().name}",
        )
    o = p.step(sid, NONSENSE, advanced)
    check(o.turn == advanced + 1, "the session was corrupted by non-UTF-8 input")


@rule("a duplicate step_index returns the stored reply and never steps twice")
def _idempotent(p: Probe) -> None:
    sid = p.reset(max_turns=p.info.features.max_turns_limit).session_id
    first = p.step(sid, NONSENSE, 0)
    again = p.step(sid, "something else entirely", 0)
    check(first == again, "a retried step_index 0 returned a different observation")
    second = p.step(sid, NONSENSE, 1)
    check(second.turn == 2, f"after a duplicate, the next step reports turn {second.turn}, not 2")
    p.expect_code(
        grpc.StatusCode.FAILED_PRECONDITION,
        "Step",
        pb.StepRequest(session_id=sid, action=NONSENSE, step_index=7),
        "Step with step_index 7 at turn 2",
    )


@rule("concurrent steps on one session are applied one at a time")
def _concurrent(p: Probe) -> None:
    n = 8
    sid = p.reset(max_turns=p.info.features.max_turns_limit).session_id
    with ThreadPoolExecutor(n) as pool:
        dup = list(pool.map(lambda _: p.step(sid, NONSENSE, 0), range(n)))
        check(
            all(o == dup[0] for o in dup) and dup[0].turn == 1,
            "concurrent copies of step_index 0 did not all return the one stored reply",
        )
        turns = sorted(o.turn for o in pool.map(lambda _: p.step(sid, NONSENSE), range(n)))
    limit = p.info.features.max_turns_limit
    expected = list(range(2, min(n + 2, limit + 1)))
    check(turns[: len(expected)] == expected, f"concurrent steps reported turns {turns}, expected {expected}")


@rule("the turn limit truncates, and a step after the end is FAILED_PRECONDITION")
def _after_end(p: Probe) -> None:
    sid = p.reset(max_turns=1).session_id
    o = p.step(sid, NONSENSE, 0)
    check(o.terminated or o.truncated, "with max_turns 1 the first step neither terminated nor truncated")
    check(not (o.terminated and o.truncated), "terminated and truncated are both set")
    again = p.step(sid, NONSENSE, 0)
    check(again == o, "a retry of the final step did not return the stored reply")
    p.expect_code(
        grpc.StatusCode.FAILED_PRECONDITION,
        "Step",
        pb.StepRequest(session_id=sid, action=NONSENSE),
        "Step after the episode ended",
    )


@rule("rewards stay within the declared range")
def _reward_range(p: Probe) -> None:
    f = p.info.features
    sid = p.reset(max_turns=3).session_id
    for i in range(3):
        o = p.step(sid, NONSENSE, i)
        check(f.reward_min <= o.reward <= f.reward_max, f"reward {o.reward} outside [{f.reward_min}, {f.reward_max}]")
        if o.terminated or o.truncated:
            break


@rule("every reward is a finite number")
def _finite_rewards(p: Probe) -> None:
    # One NaN or infinite reward makes a whole GRPO group's advantages NaN; a server must never send one.
    f = p.info.features
    sid = p.reset(max_turns=f.max_turns_limit).session_id
    for i in range(min(f.max_turns_limit, 20)):
        action = NONSENSE
        if f.provides_expert:
            expert = p.call("ExpertAction", pb.ExpertActionRequest(session_id=sid))
            action = expert.action if expert.provided else NONSENSE
        o = p.step(sid, action, i)
        check(math.isfinite(o.reward), f"step {i} sent the reward {o.reward}")
        if o.terminated or o.truncated:
            break


# --- valid actions and the expert --------------------------------------------------------------


@rule("valid actions appear only when asked, and match ValidActions")
def _valid_actions(p: Probe) -> None:
    task_id = p.first_task().id
    if not p.info.features.provides_valid_actions:
        sid = p.reset(task_id).session_id
        reply = p.call("ValidActions", pb.ValidActionsRequest(session_id=sid))
        check(not reply.provided, "ValidActions says provided, but Features.provides_valid_actions is false")
        p.expect_code(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Reset",
            pb.ResetRequest(task_id=task_id, options=pb.ResetOptions(include_valid_actions=True)),
            "Reset asking for valid actions from an env without them",
        )
        return
    plain = p.reset(task_id)
    check(
        not plain.observation.valid_actions_included and not plain.observation.valid_actions,
        "valid actions were sent though the Reset did not ask for them",
    )
    asked = p.reset(task_id, include_valid_actions=True)
    check(asked.observation.valid_actions_included, "Reset asked for valid actions but none were included")
    listed = p.call("ValidActions", pb.ValidActionsRequest(session_id=asked.session_id))
    check(listed.provided, "ValidActions not provided though Features says it is")
    check(
        list(listed.actions) == list(asked.observation.valid_actions),
        "Observation.valid_actions differs from ValidActions",
    )
    o = p.step(asked.session_id, listed.actions[0] if listed.actions else NONSENSE, 0)
    check(o.valid_actions_included or o.terminated or o.truncated, "a later observation dropped the valid actions")


@rule("the expert solves a task of every difficulty")
def _expert(p: Probe) -> None:
    f = p.info.features
    if not f.provides_expert:
        sid = p.reset().session_id
        check(
            not p.call("ExpertAction", pb.ExpertActionRequest(session_id=sid)).provided,
            "ExpertAction says provided, but Features.provides_expert is false",
        )
        raise Skipped("the environment declares no expert")
    for difficulty in p.info.catalogue.difficulties:
        tasks = p.call("ListTasks", pb.ListTasksRequest(difficulty=difficulty, page_size=1)).tasks
        if not tasks:
            continue
        sid = p.reset(tasks[0].id, max_turns=f.max_turns_limit).session_id
        o = None
        for i in range(f.max_turns_limit):
            expert = p.call("ExpertAction", pb.ExpertActionRequest(session_id=sid))
            check(expert.provided, f"the expert had no move at turn {i} of {tasks[0].id}")
            o = p.step(sid, expert.action, i)
            if o.terminated or o.truncated:
                break
        check(o is not None and o.success, f"the expert did not solve {tasks[0].id} ({difficulty})")


# --- state keys ------------------------------------------------------------------------------

STATE_KEY_PATH_TURNS = 40  # the longest path the state-key rule follows


def _path_action(p: Probe, sid: str) -> str:
    """The next action of the path the state-key rule follows: the expert's, else the first valid action."""
    f = p.info.features
    if f.provides_expert:
        expert = p.call("ExpertAction", pb.ExpertActionRequest(session_id=sid))
        if expert.provided:
            return expert.action
    if f.provides_valid_actions:
        listed = p.call("ValidActions", pb.ValidActionsRequest(session_id=sid))
        if listed.actions:
            return listed.actions[0]
    return NONSENSE


def _echo_key(key: str) -> str:
    return repr(key if len(key) <= 60 else key[:60] + "...")


@rule("state keys follow the state, not the path: same actions give the same keys, an invalid action keeps the key")
def _state_keys(p: Probe) -> None:
    f = p.info.features
    task_id, limit = p.first_task().id, f.max_turns_limit
    first = p.reset(task_id, max_turns=limit, include_valid_actions=f.provides_valid_actions)
    observations: list[pb.Observation] = [first.observation]
    path: list[str] = []
    while len(path) < min(limit // 2, STATE_KEY_PATH_TURNS) or not path:
        path.append(_path_action(p, first.session_id))
        observations.append(p.step(first.session_id, path[-1], len(path) - 1))
        if observations[-1].terminated or observations[-1].truncated:
            break
    keys = [o.state_key for o in observations]
    if not any(keys):
        raise Skipped("the server sends no state keys")
    if not all(keys):
        raise Violation(f"turn {keys.index('')} has no state_key though other turns have one: send one every turn")
    last = observations[-1]
    check(
        not last.terminated or keys[-1] not in keys[:-1],
        f"the state that ended the episode at turn {len(path)} has the key of an earlier state, where it had not ended",
    )
    seen: dict[str, int] = {}
    for j, (key, o) in enumerate(zip(keys, observations, strict=True)):
        i = seen.setdefault(key, j)
        check(
            not o.valid_actions_included or list(observations[i].valid_actions) == list(o.valid_actions),
            f"turns {i} and {j} have equal state keys but different valid actions: equal keys must mean equal states",
        )

    # The same task driven by the same actions passes through the same states.
    again = p.reset(task_id, max_turns=limit)
    replayed = [again.observation.state_key]
    replayed += [p.step(again.session_id, action, i).state_key for i, action in enumerate(path)]
    for turn, (a, b) in enumerate(zip(keys, replayed, strict=True)):
        check(a == b, f"the same actions gave two state keys at turn {turn}: {_echo_key(a)}, {_echo_key(b)}")

    # An invalid action changes nothing: the key stays, and the path goes on through the same keys. A key
    # that counts turns or records the actions sent fails here.
    third = p.reset(task_id, max_turns=limit)
    sid, turn, now = third.session_id, 0, third.observation
    for i, action in enumerate([*path, None]):
        ended = now.terminated or now.truncated
        if not ended and turn + 1 + len(path) - i <= limit:
            stay = p.step(sid, NONSENSE, turn)
            turn += 1
            if stay.action_valid:
                return  # the rule on nonsense actions judges that; what it did to the state is unknown
            check(
                stay.state_key == keys[i],
                f"an invalid action at turn {turn} changed the state key from {_echo_key(keys[i])} to "
                f"{_echo_key(stay.state_key)}: a step that changes nothing keeps the key",
            )
        if action is None or ended:
            break
        now = p.step(sid, action, turn)
        turn += 1
        check(
            now.state_key == keys[i + 1],
            f"after an invalid action, the path's turn {i + 1} gave the state key {_echo_key(now.state_key)}, not "
            f"{_echo_key(keys[i + 1])}: a key must not depend on how many turns or which actions led to the state",
        )


# --- lifecycle -------------------------------------------------------------------------------


@rule("Close is idempotent and ends the session")
def _close(p: Probe) -> None:
    sid = p.reset().session_id
    check(p.call("Close", pb.CloseRequest(session_id=sid)).was_open, "first Close reported was_open = false")
    check(not p.call("Close", pb.CloseRequest(session_id=sid)).was_open, "second Close reported was_open = true")
    p.expect_code(
        grpc.StatusCode.NOT_FOUND, "Step", pb.StepRequest(session_id=sid, action=NONSENSE), "Step after Close"
    )


@rule("sessions beyond capacity are RESOURCE_EXHAUSTED, and capacity returns after Close")
def _capacity(p: Probe) -> None:
    cap = p.info.features.max_sessions
    if cap > p.capacity_limit:
        raise Skipped(f"max_sessions {cap} is above the suite's --capacity-limit {p.capacity_limit}")
    p.close_all()
    task_id = p.first_task().id
    opened = 0
    try:
        for _ in range(cap + 1):
            p.reset(task_id)
            opened += 1
    except grpc.RpcError as exc:
        check(
            exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"Reset at capacity failed with {exc.code().name}, not RESOURCE_EXHAUSTED",
        )
    else:
        raise Violation(f"{cap + 1} sessions opened though max_sessions is {cap}")
    check(opened >= 1, "no session could be opened at all")
    p.close_all()
    p.reset(task_id)


@rule("the Session stream runs an episode, reports errors in-band, and frees its session")
def _stream(p: Probe) -> None:
    task_id = p.first_task().id
    requests = [
        pb.SessionRequest(reset=pb.ResetRequest(task_id=task_id)),
        pb.SessionRequest(step=pb.StepRequest(action=NONSENSE, step_index=0)),
        pb.SessionRequest(step=pb.StepRequest(session_id="no-such-session", action=NONSENSE)),
        pb.SessionRequest(step=pb.StepRequest(action=NONSENSE, step_index=0)),
        pb.SessionRequest(valid_actions=pb.ValidActionsRequest()),
    ]
    replies = list(p.stub.Session(iter(requests), timeout=p.timeout, metadata=p.metadata))
    check(len(replies) == len(requests), f"{len(requests)} requests got {len(replies)} replies")
    kinds = [r.WhichOneof("result") for r in replies]
    check(kinds == ["reset", "step", "error", "step", "valid_actions"], f"replies were {kinds}")
    check(
        replies[2].error.code == grpc.StatusCode.NOT_FOUND.value[0],
        f"stream error for an unknown session has code {replies[2].error.code}, not NOT_FOUND",
    )
    check(replies[1].step == replies[3].step, "a duplicate step_index on the stream stepped twice")
    sid = replies[0].reset.session_id
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the server learns of the stream's end asynchronously
        try:
            p.call("Step", pb.StepRequest(session_id=sid, action=NONSENSE))
        except grpc.RpcError as exc:
            check(exc.code() == grpc.StatusCode.NOT_FOUND, f"stream's session after the stream: {exc.code().name}")
            return
        time.sleep(0.05)
    raise Violation("the stream's session was still open after the stream ended")


def _mux(slot: int, **op) -> pb.MultiplexOp:
    return pb.MultiplexOp(slot=slot, **op)


@rule("the Multiplex stream runs many sessions, keeps each slot's order, reports errors in-band, frees sessions")
def _multiplex(p: Probe) -> None:
    task_id = p.first_task().id
    step = pb.StepRequest(action=NONSENSE, step_index=0)
    first = pb.MultiplexRequest(
        ops=[
            _mux(1, reset=pb.ResetRequest(task_id=task_id)),
            _mux(2, reset=pb.ResetRequest(task_id=task_id)),
            _mux(1, step=step),
            _mux(3, step=step),  # an empty slot
            _mux(2, step=step),
            _mux(1, step=step),  # a retry of slot 1's step 0
            _mux(2, valid_actions=pb.ValidActionsRequest()),
            _mux(2, close=pb.CloseRequest()),
            _mux(2, step=step),  # after its Close
        ]
    )
    again = pb.MultiplexRequest(ops=[_mux(1, reset=pb.ResetRequest(task_id=task_id))])
    try:
        replies = list(p.stub.Multiplex(iter([first, again]), timeout=p.timeout, metadata=p.metadata))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise Skipped("no Multiplex RPC (optional: clients fall back to the Session stream)") from None
        raise
    by_slot: dict[int, list[pb.MultiplexResult]] = {}
    for reply in replies:
        for result in reply.results:
            by_slot.setdefault(result.slot, []).append(result)
    kinds = {slot: [r.WhichOneof("result") for r in results] for slot, results in sorted(by_slot.items())}
    expected = {1: ["reset", "step", "step", "reset"], 2: ["reset", "step", "valid_actions", "close", "error"]}
    expected[3] = ["error"]
    check(kinds == expected, f"results per slot were {kinds}, expected {expected}")
    one, two, three = by_slot[1], by_slot[2], by_slot[3]
    check(one[1].step == one[2].step, "a duplicate step_index on the Multiplex stream stepped twice")
    check(one[0].reset.session_id != two[0].reset.session_id, "two slots got the same session id")
    for what, result in (("an empty slot", three[0]), ("a closed slot", two[4])):
        code = result.error.code
        check(code == grpc.StatusCode.NOT_FOUND.value[0], f"a step into {what} has code {code}, not NOT_FOUND")
    check(two[3].close.was_open, "Close of a slot's open session said was_open = false")
    gone = [one[0].reset.session_id, one[3].reset.session_id]  # replaced by a Reset; freed with the stream
    deadline = time.monotonic() + 5
    while gone and time.monotonic() < deadline:  # the server learns of the stream's end asynchronously
        try:
            p.call("Step", pb.StepRequest(session_id=gone[0], action=NONSENSE))
        except grpc.RpcError as exc:
            check(exc.code() == grpc.StatusCode.NOT_FOUND, f"a Multiplex session after its end: {exc.code().name}")
            gone.pop(0)
            continue
        time.sleep(0.05)
    check(not gone, "a Multiplex session was still open after its slot was reset or the stream ended")


# --- runner ----------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    status: str  # "pass" | "fail" | "skip"
    detail: str = ""
    seconds: float = 0.0


def run_suite(
    address: str,
    *,
    token: str | None = None,
    timeout: float = 30.0,
    capacity_limit: int = 5000,
    only: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
) -> list[Result]:
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    channel = (
        grpc.secure_channel(address, credentials, options) if credentials else grpc.insecure_channel(address, options)
    )
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    stub = pb_grpc.EnvironmentServiceStub(channel)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
        info = stub.GetInfo(pb.GetInfoRequest(), timeout=timeout, metadata=metadata)
    except (grpc.RpcError, grpc.FutureTimeoutError) as exc:
        channel.close()
        return [Result("server answers GetInfo", "fail", f"cannot reach {address}: {exc}")]
    results = []
    for name, fn in RULES:
        if only and only.lower() not in name.lower():
            continue
        probe = Probe(address, channel, stub, info, metadata, timeout, capacity_limit)
        started = time.perf_counter()
        try:
            fn(probe)
            result = Result(name, "pass")
        except Skipped as exc:
            result = Result(name, "skip", str(exc))
        except Violation as exc:
            result = Result(name, "fail", str(exc))
        except grpc.RpcError as exc:
            result = Result(name, "fail", f"unexpected {exc.code().name}: {exc.details()}")
        finally:
            probe.close_all()
        result.seconds = time.perf_counter() - started
        results.append(result)
    channel.close()
    return results


def format_report(address: str, results: list[Result]) -> str:
    marks = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}
    lines = [f"gymwire.v1 conformance: {address}"]
    for r in results:
        lines.append(f"  {marks[r.status]}  {r.name}" + (f"\n        {r.detail}" if r.detail else ""))
    counts = {s: sum(r.status == s for r in results) for s in marks}
    lines.append(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return "\n".join(lines)
