"""Token-exact conversation building, checked on three chat templates.

The property that matters for training: the model's sampled tokens appear in the sequence exactly
as sampled (mask 1, in order, logprobs kept), and everything else is exactly what the chat
template renders for the conversation's text.
"""

from __future__ import annotations

import copy

import pytest
from transformers import AutoTokenizer

from gymwire.trainer.model import default_model_dir
from gymwire.trainer.sequence import ConversationBuilder, decode, encode, end_of_turn_ids, render
from gymwire.trainer.types import Generation, Trajectory

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
# No special tokens between turns at all: the end of a turn is plain text.
PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)


@pytest.fixture(scope="module")
def chatml():
    return AutoTokenizer.from_pretrained(default_model_dir())


@pytest.fixture(scope="module")
def llama3(chatml):
    tok = copy.deepcopy(chatml)
    tok.add_special_tokens(
        {
            "additional_special_tokens": [
                "<|begin_of_text|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eot_id|>",
                "<|end_of_text|>",
            ]
        }
    )
    tok.bos_token = "<|begin_of_text|>"
    tok.eos_token = "<|end_of_text|>"  # as in Llama 3 base: the turn ends with a different token
    tok.chat_template = LLAMA3_TEMPLATE
    return tok


@pytest.fixture(scope="module")
def plain(chatml):
    tok = copy.deepcopy(chatml)
    tok.chat_template = PLAIN_TEMPLATE
    return tok


@pytest.fixture(params=["chatml", "llama3", "plain"])
def tok(request):
    return request.getfixturevalue(request.param)


def sampled(tok, text: str, *, stop: bool = True, by_char: bool = False) -> Generation:
    """A completion as a sampler would return it. by_char: tokens the tokenizer itself would never
    produce for this text, to prove nothing is re-tokenised."""
    ids = [i for ch in text for i in encode(tok, ch)] if by_char else encode(tok, text)
    if stop:
        ids.append(end_of_turn_ids(tok)[-1])
    logprobs = [-0.01 * (k + 1) for k in range(len(ids))]
    return Generation(ids, logprobs, tok.decode(ids, skip_special_tokens=True), "stop" if stop else "length")


def assert_sampled_tokens_exact(builder: ConversationBuilder, generations: list[Generation]) -> None:
    ids = [t for t, m in zip(builder.token_ids, builder.loss_mask, strict=True) if m]
    lps = [lp for lp, m in zip(builder.logprobs, builder.loss_mask, strict=True) if m]
    assert ids == [t for g in generations for t in g.token_ids]
    assert lps == [lp for g in generations for lp in g.logprobs]
    assert all(lp == 0.0 for lp, m in zip(builder.logprobs, builder.loss_mask, strict=True) if not m)


def rendered_text(tok, builder: ConversationBuilder, *, generation_prompt: bool) -> str:
    return render(tok, builder.messages, add_generation_prompt=generation_prompt)


def sequence_text(tok, ids: list[int]) -> str:
    # The plain template never renders the stop token the model samples; there it is the one
    # token outside the template's text, so compare without special tokens.
    if tok.chat_template == PLAIN_TEMPLATE:
        return tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return decode(tok, ids)


def test_end_of_turn_ids_found_from_the_template(chatml, llama3, plain):
    assert end_of_turn_ids(chatml) == [chatml.convert_tokens_to_ids("<|im_end|>")]
    assert end_of_turn_ids(llama3) == [llama3.convert_tokens_to_ids(t) for t in ("<|end_of_text|>", "<|eot_id|>")]
    assert end_of_turn_ids(plain) == [plain.eos_token_id]


@pytest.mark.parametrize("by_char", [False, True])
def test_multi_turn_sequence_is_the_template_rendering(tok, by_char):
    b = ConversationBuilder.start(tok, "You are in a room. Exits: north.", instruction="Act.", system="Be brief.")
    assert decode(tok, b.prompt_ids) == rendered_text(tok, b, generation_prompt=True)
    gens = []
    for action, obs in [("go north", "A hall. Exits: south, east."), ("go east", "A garden.")]:
        gens.append(sampled(tok, action, by_char=by_char))
        b.add_generation(gens[-1])
        assert b.add_observation(obs)
        assert sequence_text(tok, b.prompt_ids) == rendered_text(tok, b, generation_prompt=True)
    gens.append(sampled(tok, "look", by_char=by_char))
    b.add_generation(gens[-1])
    b.finish()
    assert sequence_text(tok, b.token_ids) == rendered_text(tok, b, generation_prompt=False)
    assert_sampled_tokens_exact(b, gens)
    assert [m["role"] for m in b.messages] == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert not b.truncated and b.turns == 3
    if not by_char and "<|im_start|>" in tok.chat_template:
        # ChatML puts a special token at every boundary, so with canonical sampled tokens the
        # whole sequence is token-identical to tokenising the template's text. (Not so for the
        # Llama-3 one: its generation prompt ends in "\n\n", one token at the end of the prompt
        # the model saw but two tokens once text follows; the builder keeps what the model saw.)
        assert b.token_ids == encode(tok, rendered_text(tok, b, generation_prompt=False))


def test_stop_token_kept_once_and_trained(chatml):
    b = ConversationBuilder.start(chatml, "obs")
    g = sampled(chatml, "act")
    b.add_generation(g)
    b.add_observation("next")
    end = chatml.convert_tokens_to_ids("<|im_end|>")
    start = b.prompt_length
    assert b.token_ids[start : start + len(g.token_ids)] == g.token_ids
    assert b.token_ids[start + len(g.token_ids)] != end  # not appended twice
    assert b.loss_mask[start + len(g.token_ids) - 1] == 1


def test_length_cut_completion_gets_end_of_turn_untrained(tok):
    b = ConversationBuilder.start(tok, "obs")
    g = sampled(tok, "I will go nor", stop=False)
    b.add_generation(g)
    assert b.add_observation("You stopped mid-sentence.")
    end = b.prompt_length + len(g.token_ids)
    eot = end_of_turn_ids(tok)[-1]
    if tok.chat_template != PLAIN_TEMPLATE:
        assert b.token_ids[end] == eot and b.loss_mask[end] == 0
    assert sequence_text(tok, b.prompt_ids) == rendered_text(tok, b, generation_prompt=True)
    b.add_generation(sampled(tok, "again", stop=False))
    b.finish()
    assert sequence_text(tok, b.token_ids) == rendered_text(tok, b, generation_prompt=False)
    assert b.loss_mask[-1] == 0 or tok.chat_template == PLAIN_TEMPLATE
    assert not b.truncated


def test_turn_limit_truncates(tok):
    b = ConversationBuilder.start(tok, "obs", max_turns=2)
    gens = [sampled(tok, "a1"), sampled(tok, "a2")]
    b.add_generation(gens[0])
    assert b.add_observation("o1")
    b.add_generation(gens[1])
    assert not b.add_observation("o2")
    assert b.truncated and "turn limit" in b.truncation_reason and b.done
    assert b.messages[-1]["role"] == "assistant"
    assert sequence_text(tok, b.token_ids) == rendered_text(tok, b, generation_prompt=False)
    assert_sampled_tokens_exact(b, gens)
    traj = b.fill(Trajectory(env="e", task_id="t", group_id="g"))
    assert traj.truncated and traj.turns == 2 and traj.generated_tokens == sum(len(g.token_ids) for g in gens)
    with pytest.raises(RuntimeError):
        b.add_generation(sampled(tok, "a3"))


def test_max_total_tokens(tok):
    b0 = ConversationBuilder.start(tok, "obs")
    limit = b0.prompt_length + 12
    b = ConversationBuilder.start(tok, "obs", max_total_tokens=limit)
    assert b.max_new_tokens(200) == 12
    g = sampled(tok, "a1")
    b.add_generation(g)
    assert not b.add_observation("a long observation " * 20)  # the reply does not fit
    assert b.truncated and "max_total_tokens" in b.truncation_reason
    assert len(b.token_ids) <= limit
    assert_sampled_tokens_exact(b, [g])

    # A completion longer than the room left is cut to fit, keeping the sampled prefix.
    b = ConversationBuilder.start(tok, "obs", max_total_tokens=limit)
    long = sampled(tok, "word " * 30, stop=False)
    b.add_generation(long)
    assert b.truncated and len(b.token_ids) == limit
    assert b.token_ids[b.prompt_length :] == long.token_ids[:12]
    assert not b.add_observation("o") and b.finished

    # A prompt that does not fit at all.
    b = ConversationBuilder.start(tok, "obs", max_total_tokens=3)
    assert b.done and b.truncated and b.max_new_tokens(10) == 0


def test_history_window_contexts_and_masks(tok):
    k = 1
    b = ConversationBuilder.start(tok, "first observation", instruction="Instr.", history_turns=k)
    contexts, gens = [], []
    for i in range(4):
        contexts.append(b.prompt_ids)
        gens.append(sampled(tok, f"action {i}"))
        b.add_generation(gens[-1])
        assert b.add_observation(f"observation {i + 1}")
    # The windowed prompt is what the template renders for initial messages + last k exchanges.
    windowed = b.messages[:1] + b.messages[-2 * k :]
    assert sequence_text(tok, b.prompt_ids) == render(tok, windowed, add_generation_prompt=True)
    assert len(b.prompt_ids) < len(b.token_ids)
    b.finish()
    samples = b.turn_samples()
    assert len(samples) == 4
    for ctx, g, s in zip(contexts, gens, samples, strict=True):
        assert s.token_ids == ctx + g.token_ids and s.prompt_length == len(ctx)
        assert [t for t, m in zip(s.token_ids, s.loss_mask, strict=True) if m] == g.token_ids
        assert [lp for lp, m in zip(s.logprobs, s.loss_mask, strict=True) if m] == g.logprobs
    # The full sequence trains only the turns whose context was its own prefix (first k+1).
    traj = b.fill(Trajectory(env="e", task_id="t", group_id="g"))
    trained = [t for t, m in zip(traj.token_ids, traj.loss_mask, strict=True) if m]
    assert trained == [t for g in gens[: k + 1] for t in g.token_ids]
    assert sum(1 for m in b.loss_mask if m) == sum(len(g.token_ids) for g in gens)
    assert traj.info["history_turns"] == k
    # The turns the full sequence masks out travel as their own exact sequences, for GRPO and SFT.
    assert traj.windowed_turns == samples[k + 1 :]


REWRITING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{{ m['content'].split('</think>')[-1] | trim }}"
    "{% else %}{{ m['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_template_that_rewrites_the_assistant_text(chatml):
    """Like templates that drop reasoning from assistant turns: the assistant's text is not in
    the rendering, yet the template's own tokens are still found and the sampled ones kept."""
    tok = copy.deepcopy(chatml)
    tok.chat_template = REWRITING_TEMPLATE
    b = ConversationBuilder.start(tok, "obs")
    gens = [sampled(tok, "<think>maybe north</think> go north"), sampled(tok, "<think>now</think> look")]
    b.add_generation(gens[0])
    assert b.add_observation("A hall.")
    delta = b.token_ids[b.prompt_length + len(gens[0].token_ids) :]
    assert decode(tok, delta) == "\n<|im_start|>user\nA hall.<|im_end|>\n<|im_start|>assistant\n"
    b.add_generation(gens[1])
    b.finish()
    assert decode(tok, b.token_ids[-1:]) == "\n"
    assert_sampled_tokens_exact(b, gens)
    assert b.messages[1]["content"] == "<think>maybe north</think> go north"


def test_fill_writes_a_consistent_trajectory(chatml):
    b = ConversationBuilder.start(chatml, "obs")
    g = sampled(chatml, "act")
    b.add_generation(g)
    b.finish()
    traj = b.fill(Trajectory(env="e", task_id="t", group_id="g"))
    assert len(traj.token_ids) == len(traj.loss_mask) == len(traj.logprobs)
    assert traj.prompt_length == b.prompt_length and traj.messages[-1] == {"role": "assistant", "content": "act"}
    assert not traj.truncated and traj.turns == 1


def test_misuse_is_a_clear_error(chatml):
    b = ConversationBuilder.start(chatml, "obs")
    with pytest.raises(RuntimeError):
        b.add_observation("no generation yet")
    with pytest.raises(ValueError):
        b.add_generation(Generation([1, 2], [0.0], "x", "length"))
    with pytest.raises(ValueError):
        ConversationBuilder(chatml, [])
