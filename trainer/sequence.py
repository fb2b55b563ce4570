"""Token-exact multi-turn conversations for any chat template.

Why this exists: re-tokenising a conversation after the fact does not give back the tokens the
model sampled (BPE is not injective: "go north" sampled as ["go", " n", "orth"] re-tokenises as
["go", " north"]), so the log-probabilities and the loss would be computed on sequences the
model never produced. Here the model's sampled tokens are appended as sampled (loss mask 1, their
sampler log-probabilities kept) and only what the *template* adds (the end of the assistant's
turn, the environment's reply as a user message, the next generation prompt) is tokenised, with
mask 0.

How the template's part is found, without any per-model rule: render the conversation as text
with the chat template, including the assistant's turn as *text* and the new user message, and
locate the end of the assistant's text in that rendering. Everything after it is the template's
delta; it is tokenised as it would be in the full rendering (offset mapping of a fast tokenizer,
checked by decoding), so the delta's tokens are exactly the template's tokens. A template that
rewrites the assistant's text (e.g. drops reasoning between think tags from past turns) is
handled by rendering with a plain sentinel as the assistant's text; the model's own tokens then
stay in the sequence as sampled, which is what the model saw when it generated the next turn.

End of turn: a completion that stopped on a stop token keeps it (mask 1: the model must learn to
stop). If the template's delta starts with that same token it is not appended twice. A completion
cut by length gets the template's end-of-turn tokens from the delta with mask 0, so the next user
message is well formed.

History window (`history_turns=K`): the prompt for the next generation is the initial prompt
(system/instruction + first observation) followed by the last K exchanges, spliced from the stored
tokens (so it is still token-exact, not re-rendered). The generation's context then differs from
the full stored conversation once more than K exchanges exist. What is trained on:

* `token_ids`/`loss_mask` (the Trajectory) hold the whole conversation; mask 1 only on the turns
  whose context *was* the stored prefix (the first K+1 turns). Training on the full sequence is
  therefore exact but ignores the later turns.
* `turn_samples()` gives one sequence per turn: the exact context the sampler saw plus the sampled
  tokens (mask 1). The later turns (those the full sequence masks out) go into the trajectory's
  `windowed_turns`, which GRPO trains with the episode's advantage; so every sampled token is
  trained exactly once, in the context it was sampled in.

`max_total_tokens` bounds every sequence the model sees: without a window the whole conversation,
with a window each turn's context plus its completion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .types import Generation, Trajectory, TurnSample

Message = dict[str, str]


def render(
    tokenizer: Any, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool, **template_kwargs: Any
) -> str:
    """The chat template's rendering of `messages` as text."""
    text = tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt, **template_kwargs
    )
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template(tokenize=False) returned {type(text).__name__}, expected str")
    return text


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of rendered text. Special tokens are in the text already, so none are added."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def decode(tokenizer: Any, ids: Sequence[int]) -> str:
    """Exact text of ids (special tokens kept, no whitespace clean-up)."""
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


def encode_suffix(tokenizer: Any, text: str, start: int) -> list[int]:
    """Tokens of `text[start:]` as they appear when the whole `text` is tokenised.

    Tokenising the suffix on its own can differ from its tokens in context (a SentencePiece
    tokenizer adds a word-start marker at the beginning of a string). The offset mapping of the
    full text gives the in-context tokens when a token boundary falls exactly at `start`; the
    result is accepted only if it decodes back to the suffix, else the suffix is tokenised alone.
    """
    suffix = text[start:]
    if not suffix:
        return []
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    except (NotImplementedError, ValueError, KeyError, TypeError):
        ids, offsets = [], []
    for k, (begin, _end) in enumerate(offsets):
        if begin >= start:
            clean_cut = k == 0 or offsets[k - 1][1] <= start
            if clean_cut and decode(tokenizer, ids[k:]) == suffix:
                return ids[k:]
            break
    return encode(tokenizer, suffix)


def end_of_turn_ids(tokenizer: Any, **template_kwargs: Any) -> list[int]:
    """The tokens that end an assistant turn: eos, plus the special token the template writes
    right after an assistant message (e.g. <|im_end|>, <|eot_id|>, <end_of_turn>).

    Found by rendering a probe conversation, so it works for any template without a table of
    model families. Policies stop generation on these ids.
    """
    ids: list[int] = []
    eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(eos, int):
        ids.append(eos)
    probe = "gymwire end-of-turn probe"
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": probe}]
    try:
        text = render(tokenizer, messages, add_generation_prompt=False, **template_kwargs)
    except Exception:  # noqa: BLE001 - a template that cannot render a probe simply adds nothing
        return ids
    at = text.rfind(probe)
    if at < 0:
        return ids
    tail = encode_suffix(tokenizer, text, at + len(probe))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special.update(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    if tail and tail[0] in special and tail[0] not in ids:
        ids.append(tail[0])
    return ids


def opening_messages(observation: str, *, instruction: str | None = None, system: str | None = None) -> list[Message]:
    """How every episode opens, for models and reference agents alike: an optional system message,
    then one user message holding the env's instruction (if given) and the first observation."""
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    content = f"{instruction}\n\n{observation}" if instruction else observation
    return [*messages, {"role": "user", "content": content}]


_SENTINEL = "GymwireAssistantTurnSentinel"


def _text_end(rendered: str, text: str, start: int) -> int | None:
    """End position of `text` (or of its stripped form, for templates that trim) in `rendered`
    at or after `start`; None when the template changed it."""
    for candidate in (text, text.strip()) if text.strip() != text else (text,):
        at = rendered.find(candidate, start)
        if at >= 0:
            return at + len(candidate)
    return None


@dataclass
class _Turn:
    start: int  # index in the full sequence of the first sampled token
    length: int  # sampled tokens kept
    context_start: int | None  # None: context was the full prefix; else splice point (window)
    stopped: bool  # ended with a stop token the model sampled


@dataclass
class ConversationBuilder:
    """Builds one episode's token sequence, turn by turn, for any chat template.

    Use: `prompt_ids` -> policy.generate -> `add_generation` -> env step -> `add_observation`
    (returns False when the conversation cannot go on: turn limit or length limit) ... ->
    `finish()` -> `fill(trajectory)`.
    """

    tokenizer: Any
    initial_messages: list[Message]
    max_total_tokens: int | None = None
    max_turns: int | None = None
    history_turns: int | None = None  # keep only the last K exchanges in the prompt
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    stop_token_ids: list[int] | None = None  # default: end_of_turn_ids(tokenizer)

    def __post_init__(self) -> None:
        if not self.initial_messages:
            raise ValueError("a conversation needs at least one message (the first observation)")
        if self.history_turns is not None and self.history_turns < 1:
            raise ValueError("history_turns must be >= 1 (the last exchange holds the latest observation)")
        self.messages: list[Message] = [dict(m) for m in self.initial_messages]
        self._rendered = render(self.tokenizer, self.messages, add_generation_prompt=True, **self.template_kwargs)
        self.prompt = encode(self.tokenizer, self._rendered)
        self.token_ids: list[int] = list(self.prompt)
        self.loss_mask: list[int] = [0] * len(self.prompt)
        self.logprobs: list[float] = [0.0] * len(self.prompt)
        if self.stop_token_ids is None:
            self.stop_token_ids = end_of_turn_ids(self.tokenizer, **self.template_kwargs)
        self._turns: list[_Turn] = []
        self._awaiting_generation = True
        self.finished = False
        self.truncated = False
        self.truncation_reason = ""
        if self.max_total_tokens is not None and len(self.prompt) >= self.max_total_tokens:
            self._truncate(f"prompt of {len(self.prompt)} tokens leaves no room under max_total_tokens")
            self.finished = True

    @classmethod
    def start(
        cls,
        tokenizer: Any,
        observation: str,
        *,
        instruction: str | None = None,
        system: str | None = None,
        **kwargs: Any,
    ) -> ConversationBuilder:
        """A conversation that begins with `opening_messages`."""
        return cls(tokenizer, opening_messages(observation, instruction=instruction, system=system), **kwargs)

    # ---- state -------------------------------------------------------------------------------

    @property
    def prompt_length(self) -> int:
        return len(self.prompt)

    @property
    def turns(self) -> int:
        return len(self._turns)

    @property
    def generated_tokens(self) -> int:
        return sum(t.length for t in self._turns)

    @property
    def done(self) -> bool:
        """No further generation is possible (finished or truncated)."""
        return self.finished or self.truncated

    def _context_start(self) -> int | None:
        """Where the next prompt's history starts in the full sequence (None = everything)."""
        k = self.history_turns
        if k is None or len(self._turns) <= k:
            return None
        return self._turns[len(self._turns) - k].start

    def _context_length(self, extra: int = 0) -> int:
        start = self._context_start()
        if start is None:
            return len(self.token_ids) + extra
        return len(self.prompt) + len(self.token_ids) - start + extra

    @property
    def prompt_ids(self) -> list[int]:
        """The context for the next generation (full conversation, or windowed)."""
        start = self._context_start()
        return list(self.token_ids) if start is None else self.prompt + self.token_ids[start:]

    def max_new_tokens(self, requested: int) -> int:
        """`requested`, reduced so that the context plus the completion fits max_total_tokens."""
        if self.max_total_tokens is None:
            return requested
        return max(0, min(requested, self.max_total_tokens - self._context_length()))

    # ---- building ----------------------------------------------------------------------------

    def add_generation(self, generation: Generation) -> None:
        """Append the model's sampled tokens as sampled (mask 1, logprobs kept)."""
        if self.finished or not self._awaiting_generation:
            raise RuntimeError("add_generation called when no generation was expected")
        if len(generation.logprobs) != len(generation.token_ids):
            raise ValueError("a Generation needs one logprob per token")
        ids, lps = list(generation.token_ids), list(generation.logprobs)
        text = generation.text
        if self.max_total_tokens is not None:
            room = self.max_total_tokens - self._context_length()
            if len(ids) > room:
                ids, lps = ids[: max(room, 0)], lps[: max(room, 0)]
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                self._truncate("completion cut at max_total_tokens")
        stopped = bool(ids) and ids[-1] in (self.stop_token_ids or [])
        self._turns.append(_Turn(len(self.token_ids), len(ids), self._context_start(), stopped))
        self.token_ids += ids
        self.loss_mask += [1] * len(ids)
        self.logprobs += lps
        self.messages.append({"role": "assistant", "content": text})
        self._awaiting_generation = False

    def add_observation(self, text: str) -> bool:
        """Append the environment's reply as the template renders it, plus the next generation
        prompt (mask 0). Returns False, and finishes the conversation, when it cannot continue:
        the turn limit was reached or the reply would not fit under max_total_tokens."""
        if self.finished:
            raise RuntimeError("add_observation called after finish()")
        if self._awaiting_generation:
            raise RuntimeError("add_observation called twice without a generation between")
        if self.truncated:
            self.finish()
            return False
        if self.max_turns is not None and self.turns >= self.max_turns:
            self._truncate(f"turn limit {self.max_turns}")
            self.finish()
            return False
        messages = [*self.messages, {"role": "user", "content": text}]
        rendered = render(self.tokenizer, messages, add_generation_prompt=True, **self.template_kwargs)
        delta = self._template_delta(rendered, messages[-1:], add_generation_prompt=True)
        if self.max_total_tokens is not None and self._context_length(len(delta)) + 1 > self.max_total_tokens:
            self._truncate("observation does not fit under max_total_tokens")
            self.finish()
            return False
        self._append_template(delta)
        self.messages = messages
        self._rendered = rendered
        self._awaiting_generation = True
        return True

    def finish(self, *, truncated: bool = False, reason: str = "") -> None:
        """End the conversation. After a final model turn, append the rest of that turn as the
        template renders it (e.g. the newline after <|im_end|>, or the end-of-turn tokens of a
        length-cut completion) with mask 0, when it fits. Idempotent."""
        if truncated:
            self._truncate(reason or "truncated by the caller")
        if self.finished:
            return
        self.finished = True
        if self._awaiting_generation or not self._turns:
            return
        rendered = render(self.tokenizer, self.messages, add_generation_prompt=False, **self.template_kwargs)
        delta = self._template_delta(rendered, [], add_generation_prompt=False)
        if self.max_total_tokens is None or self._context_length(len(delta)) <= self.max_total_tokens:
            self._append_template(delta)

    def _truncate(self, reason: str) -> None:
        if not self.truncated:
            self.truncated = True
            self.truncation_reason = reason

    def _template_delta(self, rendered: str, following: list[Message], add_generation_prompt: bool) -> list[int]:
        """The template's tokens after the last assistant turn's text in `rendered` (the
        rendering of the conversation plus `following`), without the stop token the model
        already sampled.

        The assistant's text is looked up in the rendering. A template that rewrites it (e.g.
        one that drops reasoning between think tags) is handled by rendering once more with a
        plain sentinel as the assistant's text: what follows the sentinel is template-only.
        """
        before = self._rendered  # the rendering that ended with the generation prompt
        if not rendered.startswith(before):
            raise ValueError(
                "the chat template renders earlier turns differently once a later message follows; "
                "token-exact building needs a template whose rendering of a conversation is a prefix "
                "of the rendering of its continuation"
            )
        boundary = _text_end(rendered, self.messages[-1]["content"], len(before))
        if boundary is None:
            probe = [*self.messages[:-1], {"role": "assistant", "content": _SENTINEL}, *following]
            rendered = render(
                self.tokenizer, probe, add_generation_prompt=add_generation_prompt, **self.template_kwargs
            )
            boundary = _text_end(rendered, _SENTINEL, len(before)) if rendered.startswith(before) else None
            if boundary is None:
                raise ValueError("cannot locate the end of the assistant's turn in the chat template's rendering")
        delta = encode_suffix(self.tokenizer, rendered, boundary)
        turn = self._turns[-1]
        if turn.stopped and delta and delta[0] == self.token_ids[turn.start + turn.length - 1]:
            delta = delta[1:]
        return delta

    def _append_template(self, ids: list[int]) -> None:
        self.token_ids += ids
        self.loss_mask += [0] * len(ids)
        self.logprobs += [0.0] * len(ids)

    # ---- output ------------------------------------------------------------------------------

    def trained_mask(self) -> list[int]:
        """The loss mask of the full sequence: 1 on sampled tokens whose generation context was
        exactly the stored prefix (every turn without a window; the first K+1 with one)."""
        mask = list(self.loss_mask)
        for turn in self._turns:
            if turn.context_start is not None:
                mask[turn.start : turn.start + turn.length] = [0] * turn.length
        return mask

    def turn_samples(self) -> list[TurnSample]:
        """One exact (context, completion) sequence per turn; what to train on with a window."""
        samples = []
        for turn in self._turns:
            if turn.context_start is None:
                context = self.token_ids[: turn.start]
            else:
                context = self.prompt + self.token_ids[turn.context_start : turn.start]
            completion = self.token_ids[turn.start : turn.start + turn.length]
            samples.append(
                TurnSample(
                    token_ids=context + completion,
                    loss_mask=[0] * len(context) + [1] * len(completion),
                    logprobs=[0.0] * len(context) + self.logprobs[turn.start : turn.start + turn.length],
                    prompt_length=len(context),
                )
            )
        return samples

    def fill(self, trajectory: Trajectory) -> Trajectory:
        """Write the sequence fields of `trajectory` (tokens, masks, logprobs, messages, counts)."""
        mask = self.trained_mask()
        trajectory.token_ids = list(self.token_ids)
        trajectory.loss_mask = mask
        trajectory.logprobs = [lp if m else 0.0 for lp, m in zip(self.logprobs, mask, strict=True)]
        trajectory.prompt_length = len(self.prompt)
        trajectory.messages = [dict(m) for m in self.messages]
        trajectory.turns = self.turns
        trajectory.generated_tokens = self.generated_tokens
        if self.truncated:
            trajectory.truncated = True
            trajectory.info.setdefault("truncation_reason", self.truncation_reason)
        if self.history_turns is not None:
            trajectory.info.setdefault("history_turns", self.history_turns)
            windowed = [turn.context_start is not None for turn in self._turns]
            trajectory.windowed_turns = [s for s, w in zip(self.turn_samples(), windowed, strict=True) if w]
        return trajectory
