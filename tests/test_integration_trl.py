"""TRL's GRPOTrainer trains on gymwire servers through `gymwire.integrations.trl`: the example script
trains two steps, the env_mask covers exactly the environment's tokens, and a server killed mid-batch
aborts its episodes (retried on a replica, or left unscored) instead of scoring them 0."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

from gymwire.env_servers.local import LocalServer
from gymwire.integrations.episodes import parse_task_key, task_key
from gymwire.integrations.trl import GymwireRollout, episode_reward
from gymwire.trainer.model import resolve_model
from gymwire.trainer.rollout import EnvConfig, TaskRef
from tests.conftest import kill_when

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "trl" / "grpo_gymwire.py"
TWO_PROCESSES = Path(__file__).resolve().parent / "trl_two_processes.py"
SETTINGS = {"textcraft": EnvConfig(max_turns=4)}


@pytest.fixture(scope="module")
def textcraft():
    with LocalServer("textcraft") as server:
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def runs(background, textcraft, tmp_path_factory):
    """The example script and the two-process run: subprocesses that start with the module and run
    while the in-process tests below use the trainer; their tests come last and check what they did."""
    outputs = {"example": tmp_path_factory.mktemp("example"), "two": tmp_path_factory.mktemp("two-processes")}
    background.start(
        "test_the_example_trains_two_grpo_steps_against_a_served_environment",
        [sys.executable, str(EXAMPLE), "--server", textcraft.address, "--env", "textcraft", "--difficulty", "easy"]
        + ["--max-turns", "2", "--steps", "2", "--output-dir", str(outputs["example"] / "out")],
        timeout=900,
        env={**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "OMP_NUM_THREADS": "1"},
    )
    vllm_url = f"http://127.0.0.1:{_free_port()}"
    background.start(
        "test_two_processes_each_play_their_share_and_train_one_step",
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2"]
        + ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
        + [str(TWO_PROCESSES), "--server", textcraft.address, "--vllm-url", vllm_url, "--out", str(outputs["two"])],
        timeout=600,
        # Accelerate reads torchrun's ranks and, told to use the CPU, joins them over gloo.
        env={**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"},
    )
    return background, outputs, vllm_url


@pytest.fixture(scope="module")
def trainer(textcraft, tmp_path_factory):
    """A real GRPOTrainer of the default model; the rollouts below sample with its live weights."""
    import torch
    from trl import GRPOConfig, GRPOTrainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    rollout = GymwireRollout([textcraft.address])
    config = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("trl")),
        max_steps=1,
        num_generations=2,
        per_device_train_batch_size=2,
        beta=0.0,
        bf16=torch.cuda.is_available(),
        report_to="none",
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=str(resolve_model("smollm2")),
        args=config,
        train_dataset=rollout.dataset("textcraft", difficulty="easy", limit=4),
        reward_funcs=episode_reward,
        rollout_func=rollout,
    )
    yield trainer
    rollout.close()


def test_task_keys_round_trip_and_bad_keys_are_refused():
    assert parse_task_key(task_key(TaskRef("textcraft", "goal:stick/1"))) == TaskRef("textcraft", "goal:stick/1")
    for bad in ["stick", "gymwire:textcraft", "gymwire:/x", "gymwire:textcraft/"]:
        with pytest.raises(ValueError, match="task key"):
            parse_task_key(bad)


def _runs(mask: list[int], value: int) -> list[tuple[int, int]]:
    """[start, end) of each maximal run of `value` in `mask`."""
    runs, start = [], None
    for i, m in enumerate([*mask, 1 - value]):
        if m == value and start is None:
            start = i
        elif m != value and start is not None:
            runs.append((start, i))
            start = None
    return runs


@pytest.mark.slow
def test_env_mask_is_one_exactly_on_the_tokens_the_model_sampled(trainer, textcraft):
    rollout = GymwireRollout([textcraft.address], max_turn_tokens=16, env_settings=SETTINGS)
    try:
        keys = rollout.task_keys("textcraft", difficulty="easy", limit=2)
        out = rollout([keys[0], keys[0], keys[1]], trainer)
    finally:
        rollout.close()
    tokenizer = trainer.processing_class
    assert len(out["completion_ids"]) == 3
    for prompt, completion, mask, logprobs, reward in zip(
        out["prompt_ids"], out["completion_ids"], out["env_mask"], out["logprobs"], out["episode_reward"], strict=True
    ):
        assert reward is not None
        assert len(completion) == len(mask) == len(logprobs)
        assert mask[0] == 1  # the completion starts with the model's first sampled token
        sampled = _runs(mask, 1)
        framing = _runs(mask, 0)
        full_text = tokenizer.decode(prompt + completion)
        turns = [s for s in full_text.split("<|im_start|>assistant\n")[1:]]
        assert len(sampled) == len(turns)  # one run of sampled tokens per assistant turn
        for (start, end), turn in zip(sampled, turns, strict=True):
            text = tokenizer.decode(completion[start:end])
            assert turn.startswith(text.removesuffix("<|im_end|>"))  # the run is the turn's text, nothing more
            assert all(lp < 0.0 or lp == 0.0 for lp in logprobs[start:end])
        for start, end in framing:  # every masked run is the template framing an environment reply
            text = tokenizer.decode(completion[start:end])
            assert "<|im_start|>user\n" in text or text == "<|im_end|>\n" or text.strip() == ""
            assert all(lp == 0.0 for lp in logprobs[start:end])
        observations = full_text.split("<|im_start|>user\n")[2:]  # the replies after the first prompt
        masked_text = "".join(tokenizer.decode(completion[s:e]) for s, e in framing)
        for observation in observations:
            assert observation.split("<|im_end|>")[0] in masked_text


def _generating(rollout: GymwireRollout):
    """True once the policy has started its first batch: every episode has reset and is mid-flight."""
    return lambda: rollout._policy is not None and bool(getattr(rollout._policy, "batch_sizes", []))


@pytest.mark.slow
def test_a_server_killed_mid_batch_leaves_its_episodes_unscored(trainer):
    server = LocalServer("textcraft").wait()
    rollout = GymwireRollout([server.address], max_turn_tokens=16, env_settings=SETTINGS, abort_retries=1)
    try:
        keys = rollout.task_keys("textcraft", difficulty="easy", limit=1)
        watcher = kill_when(_generating(rollout), server)
        out = rollout([keys[0]] * 2, trainer)
        watcher.join()
    finally:
        rollout.close()
        server.stop()
    assert out["episode_reward"] == [None, None]  # TRL reads None as unscorable: no baseline, advantage 0
    assert out["episode_success"] == [None, None]
    assert all(set(mask) == {0} for mask in out["env_mask"])  # nothing sampled before the fault is trained on
    assert rollout.stats.aborted_dropped == 2 and rollout.stats.aborted_retried == 2


@pytest.mark.slow
def test_episodes_of_a_killed_replica_are_replayed_on_the_other(trainer):
    first, second = LocalServer("textcraft").wait(), LocalServer("textcraft").wait()
    rollout = GymwireRollout([first.address, second.address], max_turn_tokens=16, env_settings=SETTINGS)
    try:
        keys = rollout.task_keys("textcraft", difficulty="easy", limit=1)
        watcher = kill_when(_generating(rollout), first)
        out = rollout([keys[0]] * 4, trainer)
        watcher.join()
    finally:
        rollout.close()
        first.stop()
        second.stop()
    assert None not in out["episode_reward"]  # every episode finished on the live replica and was scored
    assert rollout.stats.aborted_retried >= 1 and rollout.stats.aborted_dropped == 0
    assert all(1 in mask for mask in out["env_mask"])


@pytest.mark.slow
def test_a_grpo_step_through_trl_moves_the_weights_on_sampled_tokens_only(textcraft, tmp_path):
    """The default model rarely solves a task in two turns (the return is 0 for every episode, so GRPO
    has no signal); a length penalty beside the return gives the group a spread, and the step must
    change the weights."""
    import torch
    from trl import GRPOConfig, GRPOTrainer

    def shorter_is_better(completions, completion_ids, **_):
        return [-float(len(ids)) for ids in completion_ids]

    rollout = GymwireRollout([textcraft.address], max_turn_tokens=16, env_settings={"textcraft": EnvConfig(2)})
    config = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        num_generations=4,
        per_device_train_batch_size=4,
        learning_rate=1e-4,
        beta=0.0,
        bf16=torch.cuda.is_available(),
        logging_steps=1,
        report_to="none",
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=str(resolve_model("smollm2")),
        args=config,
        train_dataset=rollout.dataset("textcraft", difficulty="easy", limit=2),
        reward_funcs=[episode_reward, shorter_is_better],
        rollout_func=rollout,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    try:
        trainer.train()
    finally:
        rollout.close()
    logged = next(entry for entry in trainer.state.log_history if "grad_norm" in entry)
    assert float(logged["grad_norm"]) > 0 and float(logged["reward_std"]) > 0
    moved = [n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert moved  # the optimizer stepped on the episodes' sampled tokens
    assert rollout.stats.episodes == 4


@pytest.mark.slow
def test_the_example_trains_two_grpo_steps_against_a_served_environment(runs):
    background, _, _ = runs
    run = background.result("test_the_example_trains_two_grpo_steps_against_a_served_environment")
    assert run.returncode == 0, run.stderr[-3000:]
    logged = re.findall(r"\{'loss': .*?'epoch': '[0-9.e-]+'\}", run.stdout + run.stderr)
    assert len(logged) == 2, (run.stdout + run.stderr)[-3000:]  # one log line per optimizer step
    assert all("'rewards/episode_reward/mean'" in line for line in logged)
    assert "episodes: 4, aborted and retried: 0, aborted and dropped: 0" in run.stdout


@pytest.mark.slow
def test_two_processes_each_play_their_share_and_train_one_step(runs):
    """Two processes (torchrun: Accelerate's own CPU launcher starts only one without MPI), joined by
    Accelerate over gloo: each process's rollout plays its own prompts against the server and the step
    moves the same weights on both. With TRL's vLLM server, a process that is not the main one has no
    `vllm_client` (TRL opens it on the main process only): the rollout must take the server's address
    from TRL's settings instead (nothing listens there in this test, so the connection is refused)."""
    background, outputs, vllm_url = runs
    run = background.result("test_two_processes_each_play_their_share_and_train_one_step")
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    out = outputs["two"]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["processes"] for r in ranks] == [2, 2]
    for rank in ranks:  # each process played its own share: 2 of the 4 episodes (2 tasks x 2 generations)
        assert len(rank["played"]) == 2 and rank["episodes"] == 2 and rank["dropped"] == 0
        assert rank["global_step"] == 1 and rank["log"]
    played = ranks[0]["played"] + ranks[1]["played"]
    assert all(played.count(key) == 2 for key in played) and len(set(played)) == 2  # each task's group of 2
    assert ranks[0]["weights_after"] == ranks[1]["weights_after"] != ranks[0]["weights_before"]
    assert ranks[0]["weights_before"] == ranks[1]["weights_before"]
    server_mode = ranks[1]
    assert server_mode["server_url"] == vllm_url
    assert server_mode["policy_error"] is not None and "Connection refused" in server_mode["policy_error"]
    assert "vllm_client" not in server_mode["policy_error"]
