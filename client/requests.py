"""Request builders shared by the sync and asyncio clients."""

from __future__ import annotations

from gymwire.v1 import environment_pb2 as pb


def list_request(split: str, difficulty: str, category: str, page_token: str) -> pb.ListTasksRequest:
    return pb.ListTasksRequest(split=split, difficulty=difficulty, category=category, page_token=page_token)


def reset_request(
    task_id: str | None,
    split: str,
    difficulty: str,
    category: str,
    seed: int | None,
    include_valid_actions: bool,
    max_turns: int,
) -> pb.ResetRequest:
    options = pb.ResetOptions(include_valid_actions=include_valid_actions, max_turns=max_turns)
    if task_id is not None:
        return pb.ResetRequest(task_id=task_id, options=options)
    sample = pb.TaskSample(split=split, difficulty=difficulty, category=category, seed=seed or 0)
    return pb.ResetRequest(sample=sample, options=options)
