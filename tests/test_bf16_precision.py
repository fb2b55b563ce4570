"""Pure bf16 training (`grpo.precision: bf16`) and the chunked fp32 log-softmax over bf16 logits.

At RL fine-tuning's learning rate (1e-6) an AdamW step is far below bf16's spacing for nearly every
weight, so torch's AdamW on bf16 weights leaves them where they were. The updater's bf16 optimizer
rounds stochastically: over many weights and steps they move as fp32 AdamW's do.
"""

from __future__ import annotations

import pytest
import torch

from gymwire.trainer.bf16_adamw import BF16AdamW, stochastic_round_bf16
from gymwire.trainer.grpo import GRPOUpdater
from gymwire.trainer.settings import GRPOConfig


def tiny_model() -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        "qwen2",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)  # initialised with std 0.02, as LLM weights are


def displacement_after_adamw(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> torch.Tensor:
    """Every weight's move after 40 steps of gradients with a steady direction plus noise (as a
    loss's gradient is over a few steps at a small learning rate), all weights flattened."""
    start = [p.detach().float().clone() for p in params]
    generator = torch.Generator().manual_seed(1)
    steady = [torch.randn(p.shape, generator=generator) for p in params]
    for _ in range(40):
        for p, g in zip(params, steady, strict=True):
            p.grad = (g + 0.5 * torch.randn(p.shape, generator=generator)).to(p.dtype)
        optimizer.step()
    return torch.cat([(p.detach().float() - s).flatten() for p, s in zip(params, start, strict=True)])


def projection(moved: torch.Tensor, reference: torch.Tensor) -> float:
    """How much of the fp32 move is made: 1 when moved equals it on average, 0 when nothing moved."""
    return float((moved * reference).sum() / (reference * reference).sum())


def test_pure_bf16_updater_moves_weights_as_fp32_adamw_does():
    model = tiny_model()
    fp32 = GRPOUpdater(model, GRPOConfig(precision="fp32", learning_rate=1e-6, device="cpu"))
    fp32_params = [p for g in fp32.optimizer.param_groups for p in g["params"]]
    bf16_model = tiny_model().to(torch.bfloat16)  # same seed: the same weights, rounded to bf16
    for p32, p16 in zip(fp32_params, bf16_model.parameters(), strict=True):
        p32.data.copy_(p16.data.float())  # start both from identical values
    bf16 = GRPOUpdater(bf16_model, GRPOConfig(precision="bf16", learning_rate=1e-6, device="cpu"))
    bf16_params = [p for g in bf16.optimizer.param_groups for p in g["params"]]
    assert all(p.dtype == torch.bfloat16 for p in bf16_params)  # pure bf16: 2 bytes a weight

    reference = displacement_after_adamw(fp32.optimizer, fp32_params)
    moved = displacement_after_adamw(bf16.optimizer, bf16_params)
    assert 0.95 < projection(moved, reference) < 1.05
    state = bf16.optimizer.state[bf16_params[0]]
    assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.bfloat16

    # torch's AdamW on the same bf16 weights: nearly every update rounds back to the old weight.
    plain_model = tiny_model().to(torch.bfloat16)
    plain_params = list(plain_model.parameters())
    plain = displacement_after_adamw(torch.optim.AdamW(plain_params, lr=1e-6, weight_decay=0.0), plain_params)
    assert projection(plain, reference) < 0.2


def test_bf16_adamw_matches_torch_adamw_on_fp32_weights():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(300, 70))
    b = torch.nn.Parameter(a.detach().clone())
    ours = BF16AdamW([a], lr=1e-3, betas=(0.8, 0.99), weight_decay=0.1)
    theirs = torch.optim.AdamW([b], lr=1e-3, betas=(0.8, 0.99), weight_decay=0.1)
    for _ in range(5):
        g = torch.randn(300, 70)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-7)
    # Checkpoints are interchangeable: same keys.
    assert set(ours.state_dict()["state"][0]) == set(theirs.state_dict()["state"][0])


def test_stochastic_rounding_is_unbiased_and_exact_on_bf16_values():
    exact = torch.tensor([1.0, -2.5, 0.0, 3.140625])
    assert torch.equal(stochastic_round_bf16(exact).float(), exact)
    x = torch.full((200_000,), 1.0 + 2**-10)  # an eighth of the way from 1 to the next bf16 value, 1 + 2^-7
    rounded = stochastic_round_bf16(x, torch.Generator().manual_seed(0)).float()
    assert set(rounded.unique().tolist()) == {1.0, 1.0 + 2**-7}
    assert abs(float(rounded.mean()) - (1.0 + 2**-10)) < 2e-5
    negative = stochastic_round_bf16(-x, torch.Generator().manual_seed(0)).float()
    assert abs(float(negative.mean()) + (1.0 + 2**-10)) < 2e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_selected_logprobs_is_the_fp32_log_softmax_in_chunks(monkeypatch, dtype):
    import gymwire.trainer.grpo_loss as grpo

    monkeypatch.setattr(grpo, "LOGSOFTMAX_CHUNK_ELEMENTS", 3 * 50)  # chunks of 3 rows: several per call
    torch.manual_seed(0)
    logits = (torch.randn(2, 7, 50) * 3).to(dtype).requires_grad_(True)
    index = torch.randint(0, 50, (2, 7))
    weights = torch.randn(2, 7)
    got = grpo.selected_logprobs(logits, index, temperature=0.7)
    assert got.dtype == torch.float32 and got.shape == (2, 7)
    (got * weights).sum().backward()

    exact_input = logits.detach().double().requires_grad_(True)
    expected = torch.log_softmax(exact_input / 0.7, dim=-1).gather(-1, index[..., None]).squeeze(-1)
    (expected * weights.double()).sum().backward()
    torch.testing.assert_close(got.double(), expected.detach(), rtol=0, atol=1e-5)
    assert logits.grad is not None and logits.grad.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2  # the gradient is stored in the logits' dtype
    torch.testing.assert_close(logits.grad.double(), exact_input.grad, rtol=tolerance, atol=tolerance)
