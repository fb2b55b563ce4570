"""What the loss sees of an episode: its tokens decoded, with the ones the model sampled (loss mask 1)
marked, so a mask can be checked by eye (`gymwire masks FILE`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gymwire.trainer.types import StepRecord, Trajectory

SAMPLED_ON, SAMPLED_OFF = "\x1b[30;42m", "\x1b[0m"  # black on green
PLAIN_ON, PLAIN_OFF = "⟦", "⟧"


def mask_runs(token_ids: Sequence[int], loss_mask: Sequence[int]) -> list[tuple[bool, list[int]]]:
    """Consecutive tokens with the same mask value, in order."""
    runs: list[tuple[bool, list[int]]] = []
    for token, m in zip(token_ids, loss_mask, strict=True):
        if runs and runs[-1][0] == bool(m):
            runs[-1][1].append(token)
        else:
            runs.append((bool(m), [token]))
    return runs


def render_masked(tokenizer: Any, token_ids: Sequence[int], loss_mask: Sequence[int], *, color: bool) -> str:
    """The sequence as text, special tokens included, with mask-1 runs highlighted (or bracketed)."""
    on, off = (SAMPLED_ON, SAMPLED_OFF) if color else (PLAIN_ON, PLAIN_OFF)
    parts = []
    for sampled, ids in mask_runs(token_ids, loss_mask):
        text = tokenizer.decode(ids, skip_special_tokens=False)
        parts.append(f"{on}{text}{off}" if sampled else text)
    return "".join(parts)


def step_line(step: StepRecord) -> str:
    """One turn as the server judged it: the action it parsed, whether it was valid, the reward, the cost."""
    ended = " terminated" if step.terminated else " truncated" if step.truncated else ""
    return (
        f"turn {step.turn}: action {step.parsed_action!r} {'valid' if step.action_valid else 'INVALID'}, "
        f"reward {step.reward:g}{ended}; {step.generated_tokens} tokens, generate {step.generate_s:.2f} s, "
        f"step {step.step_s:.3f} s"
    )


def describe(trajectory: Trajectory, tokenizer: Any, *, color: bool) -> str:
    """A header with the episode's counts and its turns, then the full sequence and each windowed turn."""
    t = trajectory
    if not t.token_ids:
        raise ValueError(f"{t.env}/{t.task_id}: no tokens stored (evaluations keep them with --keep-tokens)")
    trained = sum(t.loss_mask) + sum(sum(w.loss_mask) for w in t.windowed_turns)
    lines = [
        f"{t.env} / {t.task_id} (group {t.group_id}): reward {t.reward:g}, success {t.success}, turns {t.turns}"
        + (f", aborted: {t.abort_reason}" if t.aborted else ""),
        f"{len(t.token_ids)} tokens, prompt {t.prompt_length}, sampled by the model {t.generated_tokens}, "
        f"trained {trained} (marked {'in green' if color else PLAIN_ON + '...' + PLAIN_OFF})",
        *(step_line(step) for step in t.steps),
        "",
        render_masked(tokenizer, t.token_ids, t.loss_mask, color=color),
    ]
    for i, turn in enumerate(t.windowed_turns):
        lines += [
            "",
            f"--- windowed turn {i}: context of {turn.prompt_length} tokens, then the sampled tokens ---",
            render_masked(tokenizer, turn.token_ids, turn.loss_mask, color=color),
        ]
    return "\n".join(lines)
