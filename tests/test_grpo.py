"""GRPO update and behaviour cloning on a real tiny model (SmolLM2-135M, the embedded default).

Trajectories are sampled with `model.generate` (two model turns with an environment reply between
them, masks made by hand) so that sampler log-probs, masks and token alignment are the real thing.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch

from gymwire.trainer.grpo import (
    GRPOConfig,
    GRPOUpdater,
    LoRAConfig,
    clipped_policy_loss,
    group_advantages,
    importance_weights,
    pack_microbatches,
    token_logprobs,
)
from gymwire.trainer.types import Trajectory, TurnSample

torch.set_num_threads(1)  # the test machine is shared: more threads only wait on each other

SYSTEM = "You are an agent in a text game. Answer with one line: Action: <action>."
TASK = "You are in a kitchen. A fridge is to the north, a table to the east. Goal: put the apple on the table."
OBSERVATION = "You open the fridge. Inside you see an apple and a bottle of milk."


def traj(group: str, reward: float, aborted: bool = False) -> Trajectory:
    return Trajectory(env="test", task_id=group, group_id=group, reward=reward, aborted=aborted)


# ------------------------------------------------------------------------------------------------
# Pure functions (no model)
# ------------------------------------------------------------------------------------------------


def test_group_advantages_normalise_per_group_and_skip_flat_groups() -> None:
    batch = [traj("a", 1.0), traj("a", 0.0), traj("a", 0.0), traj("a", 1.0)]
    batch += [traj("b", 0.5), traj("b", 0.5)]  # all equal: nothing to learn
    batch += [traj("c", 1.0), traj("c", 1.0), traj("c", 0.0, aborted=True)]  # equal once the abort is gone
    batch += [traj("d", 3.0)]  # a lone episode has no baseline
    batch += [traj("e", 2.0), traj("e", 0.0), traj("e", 1.0)]

    adv = group_advantages(batch, eps=0.0)
    assert (adv.groups, adv.skipped_groups, adv.aborted) == (5, 3, 1)
    assert [t.group_id for t in adv.trajectories] == ["a"] * 4 + ["e"] * 3
    std_a = torch.tensor([1.0, 0.0, 0.0, 1.0]).std().item()
    assert adv.advantages[:4] == pytest.approx([0.5 / std_a, -0.5 / std_a, -0.5 / std_a, 0.5 / std_a])
    assert adv.advantages[4:] == pytest.approx([1.0, -1.0, 0.0])  # std of (2, 0, 1) is 1

    dr = group_advantages(batch, scale_rewards=False)  # Dr. GRPO: centred, not scaled
    assert dr.advantages == pytest.approx([0.5, -0.5, -0.5, 0.5, 1.0, -1.0, 0.0])


def test_aborted_episode_does_not_shift_its_group_baseline() -> None:
    with_abort = group_advantages([traj("g", 1.0), traj("g", 0.0), traj("g", 0.0, aborted=True)], eps=0.0)
    without = group_advantages([traj("g", 1.0), traj("g", 0.0)], eps=0.0)
    assert len(with_abort.trajectories) == 2
    assert with_abort.advantages == pytest.approx(without.advantages)


def test_policy_loss_has_no_gradient_off_mask_and_clips() -> None:
    logps = torch.full((2, 4), -1.0, requires_grad=True)
    mask = torch.tensor([[0, 1, 0, 1], [1, 1, 0, 0]], dtype=torch.float32)
    # Garbage where mask == 0 (the placeholders a trajectory carries there) must not matter.
    old = torch.tensor([[1e4, -1.0, -1e4, -1.0 - 0.5], [-1.0, -1.0 + 0.5, float("inf"), 0.0]])
    ref = torch.tensor([[9.0, -1.2, -9.0, -1.0], [-1.0, -1.0, 5.0, 5.0]])
    per_token, kl, ratio, clipped = clipped_policy_loss(
        logps, old, torch.tensor([1.0, -1.0]), mask, ref_logps=ref, beta=0.1
    )
    per_token.sum().backward()
    assert torch.isfinite(per_token).all() and torch.isfinite(logps.grad).all()
    assert (logps.grad[mask == 0] == 0).all() and (per_token[mask == 0] == 0).all() and (kl[mask == 0] == 0).all()
    # Row 0, last token: ratio e^0.5 > 1.2 with A > 0 -> clipped. Row 1, token 1: ratio e^-0.5 < 0.8, A < 0 -> clipped.
    assert clipped.tolist() == [[False, False, False, True], [False, True, False, False]]
    assert ratio[0, 3].item() == pytest.approx(torch.exp(torch.tensor(0.5)).item())
    # A clipped token still feels the KL term, nothing of the policy term.
    kl_grad = 0.1 * (1 - torch.exp(ref[0, 3] - logps[0, 3])).item()
    assert logps.grad[0, 3].item() == pytest.approx(kl_grad, abs=1e-6)


def test_microbatches_respect_the_token_budget() -> None:
    lengths = [300, 50, 120, 290, 60, 1000]
    batches = pack_microbatches(lengths, 600)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 600 or len(batch) == 1
    assert [5] in batches  # too long for the budget: alone


def test_dual_clip_bounds_negative_advantage_tokens_with_large_ratios() -> None:
    logps = torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True)
    old = torch.tensor([[-3.0, -0.05, -3.0]])  # ratios e^3 (far up), ~1.05, e^3
    mask = torch.ones(1, 3)
    advantages = torch.tensor([-1.0])
    plain, _, _, _ = clipped_policy_loss(logps, old, advantages, mask)
    bounded, _, _, clipped = clipped_policy_loss(logps, old, advantages, mask, dual_clip=3.0)
    assert plain[0, 0].item() == pytest.approx(torch.exp(torch.tensor(3.0)).item())  # unbounded without it
    assert bounded[0, 0].item() == pytest.approx(3.0) and bounded[0, 1].item() == pytest.approx(plain[0, 1].item())
    assert clipped.tolist() == [[True, False, True]]
    bounded.sum().backward()
    assert logps.grad[0, 0].item() == 0.0 and logps.grad[0, 1].item() != 0.0  # a bounded token pushes nothing
    positive, _, _, _ = clipped_policy_loss(logps.detach(), old, torch.tensor([1.0]), mask, dual_clip=3.0)
    assert positive[0, 0].item() == pytest.approx(-1.2)  # positive advantages: the usual clip only


def test_importance_weights_truncate_or_mask_above_the_cap() -> None:
    trainer = torch.tensor([[-1.0, -1.0, -1.0, -1.0]])
    sampler = torch.tensor([[-1.0, -3.0, float("nan"), -1.5]])  # equal, sampler far lower, unknown, a bit lower
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    weights, capped = importance_weights(trainer, sampler, mask, cap=2.0, mode="token_truncate")
    assert weights.tolist()[0][:3] == pytest.approx([1.0, 2.0, 1.0]) and weights[0, 3].item() == 1.0  # off-mask: 1
    assert capped.tolist() == [[False, True, False, False]]
    masked, _ = importance_weights(trainer, sampler, mask, cap=2.0, mode="token_mask")
    assert masked.tolist()[0][:3] == pytest.approx([1.0, 0.0, 1.0])


def test_a_nonfinite_reward_leaves_its_group_out() -> None:
    adv = group_advantages([traj("a", float("nan")), traj("a", 1.0), traj("b", 1.0), traj("b", 0.0)], eps=0.0)
    assert adv.nonfinite_groups == 1 and [t.group_id for t in adv.trajectories] == ["b", "b"]
    assert all(torch.isfinite(torch.tensor(adv.advantages)))


# ------------------------------------------------------------------------------------------------
# Real model
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_model(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()


def _generate_turn(model, rows: list[list[int]], max_new_tokens: int, eos: int) -> list[tuple[list[int], list[float]]]:
    """Sample one turn for every row (left-padded batch); the sampled tokens and their log-probs."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[eos] * (width - len(r)) + r for r in rows])
    attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    out = model.generate(
        input_ids=ids,
        attention_mask=attention,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=eos,
        eos_token_id=eos,
    )
    new = out.sequences[:, width:]
    logps = torch.stack(out.logits, dim=1).float().log_softmax(-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
    turns = []
    for tokens, lps in zip(new.tolist(), logps.tolist(), strict=True):
        end = tokens.index(eos) + 1 if eos in tokens else len(tokens)
        turns.append((tokens[:end], lps[:end]))
    return turns


def sample_group(model, tokenizer, group_id: str, rewards: list[float], seed: int) -> list[Trajectory]:
    """G episodes of one task: model turn, environment reply, model turn; mask 1 on sampled tokens only."""
    torch.manual_seed(seed)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    seqs = [list(prompt) for _ in rewards]
    masks = [[0] * len(prompt) for _ in rewards]
    logprobs = [[0.0] * len(prompt) for _ in rewards]
    env_reply = tokenizer.encode(f"\n<|im_start|>user\n{OBSERVATION}<|im_end|>\n<|im_start|>assistant\n")
    with torch.no_grad():
        for turn in range(2):
            for i, (tokens, lps) in enumerate(_generate_turn(model, seqs, 10, eos)):
                seqs[i] += tokens
                masks[i] += [1] * len(tokens)
                logprobs[i] += lps
                if turn == 0:
                    closing = ([] if tokens[-1] == eos else [eos]) + env_reply  # template closes a cut turn
                    seqs[i] += closing
                    masks[i] += [0] * len(closing)
                    logprobs[i] += [0.0] * len(closing)
    return [
        Trajectory(
            env="test",
            task_id="kitchen-1",
            group_id=group_id,
            token_ids=s,
            loss_mask=m,
            logprobs=lp,
            prompt_length=len(prompt),
            reward=r,
            turns=2,
        )
        for s, m, lp, r in zip(seqs, masks, logprobs, rewards, strict=True)
    ]


@pytest.fixture(scope="module")
def group(base_model, tokenizer) -> list[Trajectory]:
    return sample_group(base_model, tokenizer, "g0", [1.0, 0.0, 0.0, 0.0], seed=1)


def masked_logprob_sums(model, trajectories: list[Trajectory]) -> list[float]:
    """Sum of log-probs of the model-sampled tokens of each trajectory under `model`."""
    sums = []
    with torch.no_grad():
        for t in trajectories:
            ids = torch.tensor([t.token_ids])
            lp = token_logprobs(model, ids, torch.ones_like(ids), 1)[0]
            sums.append(float((lp * torch.tensor(t.loss_mask[1:], dtype=torch.float32)).sum()))
    return sums


@pytest.mark.slow
def test_sampler_logprobs_align_with_training_logprobs(base_model, group) -> None:
    """An off-by-one between tokens, masks and log-probs would show as a ratio far from 1."""
    for t in group:
        assert sum(t.loss_mask) > 0 and len(t.token_ids) == len(t.loss_mask) == len(t.logprobs)
        ids = torch.tensor([t.token_ids])
        with torch.no_grad():
            ours = token_logprobs(base_model, ids, torch.ones_like(ids), 1)[0]
        positions = [i for i, m in enumerate(t.loss_mask) if m]
        diffs = [abs(float(ours[i - 1]) - t.logprobs[i]) for i in positions]
        assert max(diffs) < 2e-3, diffs


@pytest.fixture(scope="module")
def lora_updater(model_dir):
    torch.manual_seed(0)
    return GRPOUpdater(model_dir, GRPOConfig(lora=LoRAConfig(rank=4), learning_rate=1e-4))


@pytest.mark.slow
def test_loss_reads_only_mask1_tokens(lora_updater, group) -> None:
    before = lora_updater.objective(group)
    assert before["ratio_mean"] == pytest.approx(1.0, abs=2e-3)  # on-policy, and LoRA starts at B = 0
    assert before["clip_fraction"] == 0.0
    assert before["tokens"] == sum(sum(t.loss_mask) for t in group)

    # Mask-0 content the loss could read without conditioning on it: the logprob placeholders and
    # any text after the last model turn. Changing them must leave the loss bit-identical.
    noisy = []
    for t in group:
        lp = [x if m else -123.0 for x, m in zip(t.logprobs, t.loss_mask, strict=True)]
        tail = [17, 42, 99]
        noisy.append(replace(t, token_ids=t.token_ids + tail, loss_mask=t.loss_mask + [0] * 3, logprobs=lp + [5.0] * 3))
    assert lora_updater.objective(noisy) == before

    # A mask-1 log-prob does count.
    first = group[0].loss_mask.index(1)
    shifted = [replace(group[0], logprobs=group[0].logprobs[:first] + [-30.0] + group[0].logprobs[first + 1 :])]
    assert lora_updater.objective(shifted + group[1:])["loss"] != before["loss"]


def split_last_turn(t: Trajectory) -> Trajectory:
    """The same episode with its second turn carried as a windowed turn whose context is the full prefix."""
    start = next(i for i in range(len(t.loss_mask) - 1, 0, -1) if t.loss_mask[i] and not t.loss_mask[i - 1])
    turn = TurnSample(
        token_ids=list(t.token_ids),
        loss_mask=[0] * start + t.loss_mask[start:],
        logprobs=[0.0] * start + t.logprobs[start:],
        prompt_length=start,
    )
    return replace(
        t,
        loss_mask=t.loss_mask[:start] + [0] * (len(t.loss_mask) - start),
        logprobs=t.logprobs[:start] + [0.0] * (len(t.logprobs) - start),
        windowed_turns=[turn],
    )


@pytest.mark.slow
@pytest.mark.parametrize("normalization", ["tokens", "sequences"])
def test_windowed_turns_are_trained_with_their_episodes_advantage(model_dir, group, normalization) -> None:
    """A turn carried as a windowed sequence weighs exactly as it would inside its episode."""
    updater = GRPOUpdater(model_dir, GRPOConfig(loss_normalization=normalization))
    whole = updater.objective(group)
    split = [split_last_turn(t) for t in group]
    assert all(t.windowed_turns and sum(t.loss_mask) < sum(o.loss_mask) for t, o in zip(split, group, strict=True))
    assert updater.objective(split) == pytest.approx(whole, rel=1e-4, abs=1e-6)
    # Dropping the windowed turns loses their tokens: the objective is not the same any more.
    dropped = [replace(t, windowed_turns=[]) for t in split]
    assert updater.objective(dropped)["tokens"] < whole["tokens"]


@pytest.fixture(scope="module")
def stepped_full(model_dir, base_model, group):
    """A full fine-tuning updater after one step on `group` (reward 1 for episode 0 only)."""
    updater = GRPOUpdater(model_dir, GRPOConfig(learning_rate=1e-5, token_budget=2 * len(group[0].token_ids)))
    metrics = updater.step(group)
    return updater, metrics


@pytest.mark.slow
def test_step_moves_logprobs_with_the_advantage(stepped_full, base_model, group) -> None:
    updater, metrics = stepped_full
    assert metrics["updated"] == 1.0 and metrics["step"] == 1.0 and updater.global_step == 1
    assert metrics["sequences"] == 4 and metrics["skipped_groups"] == 0 and metrics["microbatches"] >= 2
    assert metrics["tokens"] == sum(sum(t.loss_mask) for t in group)
    assert metrics["grad_norm"] > 0 and metrics["kl"] == pytest.approx(0.0, abs=1e-6)
    for key in ("loss", "kl", "advantage_mean", "clip_fraction", "tokens", "skipped_groups", "grad_norm"):
        assert key in metrics

    before = masked_logprob_sums(base_model, group)
    after = masked_logprob_sums(updater.model, group)
    per_token_change = [(a - b) / sum(t.loss_mask) for a, b, t in zip(after, before, group, strict=True)]
    assert per_token_change[0] > 0  # the positive-advantage episode became more likely
    assert per_token_change[0] > max(per_token_change[1:])  # ... more than any negative one

    # The ratio is taken against the trainer's own log-probs (1 by construction here); how far the
    # updated weights now are from the sampler's numbers shows as the mismatch instead.
    again = updater.objective(group)
    assert again["kl"] > 0 and again["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert again["mismatch_abs_mean"] > metrics["mismatch_abs_mean"]


@pytest.mark.slow
def test_a_shared_prompt_runs_once_with_the_same_step(model_dir, base_model, tokenizer, group) -> None:
    """Two groups (different tasks would differ after the system prompt; here the same one): the
    prompt the rows of a micro-batch share runs once, and the step is the one full rows make, with
    and without gradient checkpointing (each against the same full-row gradients)."""
    other = sample_group(base_model, tokenizer, "g1", [0.0, 1.0, 1.0, 0.0], seed=2)
    episodes = group + other
    budget = 4 * max(len(t.token_ids) for t in episodes)
    updaters = [
        GRPOUpdater(
            model_dir,
            GRPOConfig(
                learning_rate=1e-4,
                beta=0.01,
                token_budget=budget,
                share_prefix=share,
                gradient_checkpointing=checkpointing,
            ),
        )
        for share, checkpointing in ((False, False), (True, False), (True, True))
    ]
    plans = [u._microbatches(u._advantages(episodes)) for u in updaters]
    assert [b.shared for b in plans[0]] == [0, 0]
    prompt = group[0].prompt_length
    for plan in plans[1:]:
        assert all(prompt - 1 <= b.shared < prompt + 1 for b in plan)  # a group's rows: one per micro-batch
    for updater, plan in zip(updaters, plans, strict=True):
        updater.model.train()
        for batch in plan:
            loss, _ = updater._loss(batch, {})
            loss.backward()
    grads = [{n: p.grad for n, p in u.model.named_parameters()} for u in updaters]
    for shared in grads[1:]:
        for name, plain in grads[0].items():
            assert float((shared[name] - plain).norm()) <= 1e-3 * float(plain.norm()) + 1e-8, name
    assert sum(float(g.norm()) for g in grads[0].values()) > 0


@pytest.mark.slow
def test_flat_and_aborted_groups_do_not_update(lora_updater, base_model, tokenizer) -> None:
    flat = sample_group(base_model, tokenizer, "flat", [1.0, 1.0], seed=2)
    aborted = [replace(t, group_id="ab", aborted=True, reward=0.0) for t in flat]
    weights = {n: p.detach().clone() for n, p in lora_updater.model.named_parameters() if p.requires_grad}
    step = lora_updater.global_step
    metrics = lora_updater.step(flat + aborted)
    assert metrics["updated"] == 0.0 and metrics["skipped_groups"] == 1 and metrics["aborted"] == 2
    assert metrics["tokens"] == 0 and lora_updater.global_step == step + 1
    for name, param in lora_updater.model.named_parameters():
        if param.requires_grad:
            assert torch.equal(param, weights[name])


@pytest.mark.slow
def test_full_checkpoint_resumes_same_step_and_weights(stepped_full, model_dir, tmp_path) -> None:
    updater, _ = stepped_full
    ckpt = updater.save(tmp_path / "ckpt")
    restored = GRPOUpdater(model_dir, updater.config)
    restored.load(ckpt)
    assert restored.global_step == updater.global_step == 1
    live = dict(updater.model.named_parameters())
    for name, param in restored.model.named_parameters():
        assert torch.equal(param, live[name]), name
    state_a, state_b = updater.optimizer.state_dict()["state"], restored.optimizer.state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k]["exp_avg_sq"], state_b[k]["exp_avg_sq"]) for k in state_a)
    # A full-model checkpoint is an ordinary HF folder too.
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(str(ckpt)).config.model_type == "llama"


@pytest.mark.slow
def test_lora_checkpoint_resumes_identically_and_exports_merged(model_dir, base_model, tokenizer, tmp_path) -> None:
    trained = sample_group(base_model, tokenizer, "g1", [0.0, 1.0, 0.5], seed=3)
    config = GRPOConfig(lora=LoRAConfig(rank=4), learning_rate=1e-4, beta=0.0)
    torch.manual_seed(1)
    first = GRPOUpdater(model_dir, config)
    first.step(trained)
    ckpt = first.save(tmp_path / "lora")
    assert (ckpt / "adapter_model.safetensors").exists()
    torch.manual_seed(2)  # a different LoRA init, overwritten by load
    second = GRPOUpdater(model_dir, config)
    second.load(ckpt)
    assert second.global_step == 1
    # Same weights and same optimizer state: the next step lands on the same parameters.
    first.step(trained)
    second.step(trained)
    b = dict(second.model.named_parameters())
    for name, param in first.model.named_parameters():
        if param.requires_grad:
            assert torch.allclose(param, b[name], atol=1e-7), name

    exported = first.export(tmp_path / "merged")
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(str(exported)).eval()
    assert not (exported / "adapter_config.json").exists()
    assert masked_logprob_sums(merged, trained) == pytest.approx(masked_logprob_sums(first.model, trained), abs=1e-3)
    with pytest.raises(ValueError, match="LoRA"):
        GRPOUpdater(merged, GRPOConfig(beta=0.0)).load(ckpt)


@pytest.mark.slow
def test_mismatch_metrics_measure_the_sampler_trainer_gap(lora_updater, group) -> None:
    matched = lora_updater.objective(group)
    assert 0 < matched["mismatch_abs_mean"] < 2e-3 and matched["mismatch_tokens"] == matched["tokens"]
    first = group[0].loss_mask.index(1)
    off = [
        replace(
            group[0],
            logprobs=group[0].logprobs[:first] + [group[0].logprobs[first] - 1.5] + group[0].logprobs[first + 1 :],
        )
    ] + group[1:]
    shifted = lora_updater.objective(off)
    assert shifted["mismatch_abs_max"] == pytest.approx(1.5, abs=2e-3)
    assert shifted["is_capped_fraction"] == pytest.approx(1 / shifted["tokens"])  # e^1.5 > cap 2


@pytest.mark.slow
def test_a_nonfinite_gradient_is_never_applied(model_dir, group) -> None:
    updater = GRPOUpdater(model_dir, GRPOConfig(beta=0.0, learning_rate=1e-4))
    with torch.no_grad():
        updater.model.model.norm.weight[0] = float("nan")  # what a poisoned forward looks like
    before = {n: p.detach().clone() for n, p in updater.model.named_parameters()}
    metrics = updater.step(group)
    assert metrics["nonfinite_skipped"] == 1.0 and metrics["updated"] == 0.0 and metrics["optimizer_steps"] == 0.0
    for name, param in updater.model.named_parameters():
        assert torch.equal(param, before[name]) or name == "model.norm.weight", name
    assert not updater.optimizer.state  # AdamW never saw the NaN gradient


@pytest.mark.slow
def test_updates_per_step_splits_the_batch_into_off_policy_minibatches(model_dir, base_model, tokenizer) -> None:
    episodes = sample_group(base_model, tokenizer, "u0", [1.0, 0.0], seed=4)
    episodes += sample_group(base_model, tokenizer, "u1", [0.0, 1.0], seed=5)
    updater = GRPOUpdater(
        model_dir, GRPOConfig(beta=0.0, learning_rate=3e-4, updates_per_step=2, lora=LoRAConfig(rank=4))
    )
    metrics = updater.step(episodes)
    assert metrics["optimizer_steps"] == 2.0 and metrics["microbatches"] >= 2
    # The second mini-batch ran on weights the first one moved: its ratio is no longer 1.
    assert metrics["ratio_mean"] != pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
def test_engine_settings_from_a_config_are_in_the_built_updater(model_dir) -> None:
    from gymwire.trainer.config import parse_config

    base = {"envs": {"textcraft": "127.0.0.1:1"}, "stages": [{"name": "s", "steps": 1, "mix": [{"env": "textcraft"}]}]}
    run = parse_config(
        {
            **base,
            "grpo": {
                "precision": "bf16",
                "gradient_checkpointing": True,
                "warmup_steps": 4,
                "learning_rate": 1e-5,
                "epsilon_high": 0.28,
                "lora": {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
            },
        }
    )
    updater = GRPOUpdater(model_dir, run.grpo)
    assert updater.precision == "bf16" and not updater.mixed_precision
    assert {p.dtype for p in updater.model.parameters()} == {torch.bfloat16}
    assert updater.model.is_gradient_checkpointing
    lora = updater.model.peft_config["default"]
    assert set(lora.target_modules) == {"q_proj", "v_proj"} and (lora.r, lora.lora_alpha) == (4, 8)
    trained = {n.split(".")[-4] for n, p in updater.model.named_parameters() if p.requires_grad}
    assert trained == {"q_proj", "v_proj"}
    assert updater.scheduler.get_last_lr()[0] == pytest.approx(1e-5 / 4)  # warm-up from lr / warmup_steps
    mixed = GRPOUpdater(model_dir, parse_config({**base, "grpo": {"precision": "bf16-mixed", "beta": 0.1}}).grpo)
    assert {p.dtype for p in mixed.model.parameters()} == {torch.float32} and mixed.mixed_precision
    assert {p.dtype for p in mixed.ref_model.parameters()} == {torch.bfloat16}  # no-grad copy: bf16 is enough


@pytest.mark.slow
def test_named_weights_stream_the_merged_policy_in_hf_names(model_dir, base_model, group) -> None:
    updater = GRPOUpdater(model_dir, GRPOConfig(beta=0.0, learning_rate=1e-3, lora=LoRAConfig(rank=4)))
    updater.step(group)
    streamed = dict(updater.named_weights())
    assert set(streamed) == set(base_model.state_dict())
    changed = [n for n, t in streamed.items() if not torch.equal(t, base_model.state_dict()[n])]
    assert changed and all(n.endswith("proj.weight") for n in changed)  # LoRA merged into the targets
    assert all("lora_" not in n for n, _ in updater.named_weights())
    # After streaming, the adapters are unmerged again: the live model is what it was.
    before = masked_logprob_sums(updater.model, group)
    list(updater.named_weights())
    assert masked_logprob_sums(updater.model, group) == pytest.approx(before, abs=1e-6)
    ids = group[0].token_ids
    assert updater.sequence_logprobs(ids)[1:] == pytest.approx(
        token_logprobs(updater.model, torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), 1)[0].tolist(),
        abs=1e-5,
    )


def _tiny_gpt2() -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=2, n_head=2))


@pytest.mark.parametrize("model", ["smollm2", "gpt2 (Conv1D layers)"])
def test_lora_stream_is_peft_merge_held_to_the_end(model, model_dir) -> None:
    """An engine keeps a bucket of streamed tensors before loading it: every one must still hold the
    merged weight once the stream is exhausted, and the live model must be left as it was."""
    import copy

    source = model_dir if model == "smollm2" else _tiny_gpt2()
    updater = GRPOUpdater(source, GRPOConfig(beta=0.0, lora=LoRAConfig(rank=4, alpha=8)))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in updater.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.01)
    live = {k: v.clone() for k, v in updater.model.state_dict().items()}
    expected = copy.deepcopy(updater.model).merge_and_unload().state_dict()
    streamed = list(updater.named_weights())  # held, as vLLM's buckets and the disk shards hold them
    assert sorted(name for name, _ in streamed) == sorted(expected)
    for name, tensor in streamed:
        torch.testing.assert_close(tensor, expected[name], atol=1e-6, rtol=0, msg=name)
    assert all(torch.equal(v, live[k]) for k, v in updater.model.state_dict().items())


# ------------------------------------------------------------------------------------------------
# Behaviour cloning
# ------------------------------------------------------------------------------------------------


def oracle_trajectory(tokenizer) -> Trajectory:
    """A two-turn demonstration, assembled token by token the way the rollout engine does."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    act1 = tokenizer.encode("Action: open fridge<|im_end|>")
    env = tokenizer.encode(f"\n<|im_start|>user\n{OBSERVATION}<|im_end|>\n<|im_start|>assistant\n")
    act2 = tokenizer.encode("Action: take apple<|im_end|>")
    ids = list(prompt) + act1 + env + act2
    mask = [0] * len(prompt) + [1] * len(act1) + [0] * len(env) + [1] * len(act2)
    return Trajectory(env="test", task_id="kitchen-1", group_id="oracle", token_ids=ids, loss_mask=mask, reward=1.0)


@pytest.mark.slow
def test_sft_labels_are_the_loss_mask(model_dir, tokenizer, tmp_path) -> None:
    from gymwire.trainer.sft import make_sft_trainer

    demo = oracle_trajectory(tokenizer)
    trainer = make_sft_trainer(model_dir, [demo, replace(demo, aborted=True)], tmp_path)
    rows = trainer.train_dataset
    assert len(rows) == 1  # the aborted one is left out
    assert rows[0]["input_ids"] == demo.token_ids
    assert rows[0]["labels"] == [t if m else -100 for t, m in zip(demo.token_ids, demo.loss_mask, strict=True)]


@pytest.mark.slow
def test_behaviour_cloning_raises_demonstrated_action_likelihood(model_dir, base_model, tokenizer, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from gymwire.trainer.sft import behaviour_clone

    demo = oracle_trajectory(tokenizer)
    out = behaviour_clone(model_dir, [demo] * 4, tmp_path / "bc", epochs=2, lr=1e-3, lora_r=8, batch_size=4)
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    assert not (out / "adapter_config.json").exists()  # LoRA merged: a plain HF folder
    cloned = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    n = sum(demo.loss_mask)
    before = masked_logprob_sums(base_model, [demo])[0] / n
    after = masked_logprob_sums(cloned, [demo])[0] / n
    assert after > before + 0.5, (before, after)


# ------------------------------------------------------------------------------------------------
# Why not TRL's GRPOTrainer: evidence against the installed version
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_trl_grpo_trainer_carries_env_mask_but_not_our_sampler_logprobs(model_dir, tmp_path) -> None:
    """TRL 1.16 applies `env_mask` correctly, but (without its own vLLM) takes the PPO ratio against
    the detached current log-probs, so the sampler log-probs a rollout returns change nothing; and
    `rollout_func` receives the prompts TRL's sampler chose. See the gymwire.trainer.grpo docstring."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    env_mask = [[1, 1, 0, 0, 1, 1], [1, 0, 0, 0, 1, 1]]
    asked: list[list] = []

    def rollout(prompts, trainer):
        asked.append(list(prompts))
        return {
            "prompt_ids": [[1, 520, 9531, 198]] * 2,
            "completion_ids": [[19556, 17, 2, 198, 1073, 2], [2797, 2, 198, 416, 339, 2]],
            "logprobs": [[-1.0] * 6, [-1.0] * 6],
            "env_mask": env_mask,
            "reward": [1.0, 0.0],
        }

    def reward(completions, reward, **kwargs):
        return reward

    args = TRLConfig(
        output_dir=str(tmp_path),
        num_generations=2,
        per_device_train_batch_size=2,
        beta=0.0,
        bf16=False,
        use_cpu=True,
        report_to="none",
        max_steps=1,
    )
    dataset = Dataset.from_list([{"prompt": "task-a"}, {"prompt": "task-b"}])
    trainer = GRPOTrainer(
        model=str(model_dir), reward_funcs=reward, args=args, train_dataset=dataset, rollout_func=rollout
    )
    trainer.model.train()
    batch = trainer._generate_and_score_completions([{"prompt": "task-a"}, {"prompt": "task-a"}])
    assert asked == [["task-a", "task-a"]]  # the trainer's sampler picks the task, not our schedule
    assert (batch["completion_mask"] * batch["tool_mask"]).tolist() == env_mask  # mask carried correctly
    assert "old_per_token_logps" not in batch  # no ratio against the sampler without TRL's vLLM

    trainer.current_gradient_accumulation_steps = 1  # set by TRL's own loop in train()
    loss = trainer._compute_loss(trainer.model, batch).item()
    batch["sampling_per_token_logps"] = batch["sampling_per_token_logps"] - 5.0  # wildly off-policy
    assert trainer._compute_loss(trainer.model, batch).item() == loss  # ... and nothing changes
