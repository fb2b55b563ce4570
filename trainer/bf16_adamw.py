"""AdamW for bf16 weights (`grpo.precision: bf16`): the update is rounded stochastically.

bf16 keeps 8 significant bits, so a weight of magnitude |w| is spaced 2^-7 |w| from its neighbours.
An AdamW step is about the learning rate (1e-6 for RL fine-tuning), far below half that spacing
for nearly every weight (|w| > ~2.6e-4): rounded to nearest, `w + update` is `w` again and the
model never moves, with no error. torch's AdamW on bf16 parameters does exactly that.

Here the maths of each step is fp32 (weights, moments, update) and the results are stored in bf16
by stochastic rounding: up with probability (distance to the lower neighbour / spacing). A weight
then moves by the update in expectation, so over a layer's millions of weights and over steps the
trajectory follows fp32 AdamW's; the moments are rounded the same way (rounded to nearest,
beta2 = 0.999 would leave the second moment stuck: 0.999 v rounds back to v). Memory stays at
pure bf16's 2 bytes per weight, gradient and moment each (8 per trained parameter), against
bf16-mixed's 16. The same approach as torchao's `_AdamW(bf16_stochastic_round=True)`.

Under FSDP2 the parameters, gradients and moments are DTensor shards; the step works on each
rank's local shard (everything here is elementwise) and the moments stay DTensors, so
torch.distributed.checkpoint saves and loads them like torch's AdamW state (same keys).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

# Elements updated at once: bounds the fp32 temporaries (4 tensors + the noise) for a large
# tensor such as a 152k x 3584 embedding (545M elements) to ~0.3 GB.
CHUNK = 1 << 24


def stochastic_round_bf16(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """fp32 -> bf16, rounding up or down at random with the probability that makes it unbiased.

    bf16 is the upper 16 bits of an fp32: adding uniform noise in [0, 2^16) to the fp32's bit
    pattern and dropping the lower 16 bits carries into the kept bits with probability equal to the
    dropped fraction. The sign is a separate bit, so negative values round symmetrically.
    """
    if x.dtype != torch.float32:
        raise TypeError(f"expected float32, got {x.dtype}")
    bits = x.contiguous().view(torch.int32)
    noise = torch.randint(0, 1 << 16, bits.shape, dtype=torch.int32, device=x.device, generator=generator)
    # -65536 is 0xFFFF0000 in two's complement; the lower half is zero, so .to(bf16) is exact.
    return ((bits + noise) & -65536).view(torch.float32).to(torch.bfloat16)


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor (a view: writing to it writes the parameter), else the tensor."""
    to_local = getattr(tensor, "to_local", None)
    return to_local() if to_local is not None else tensor


class BF16AdamW(torch.optim.Optimizer):
    """AdamW (decoupled weight decay, bias-corrected, as torch.optim.AdamW) whose stored weights
    and moments are rounded stochastically when they are bf16; fp32 tensors are stored as computed."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        seed: int = 0,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError("lr, eps and weight_decay must be >= 0")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})
        self._seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self._seed)
        return self._generators[device]

    def _store(self, target: torch.Tensor, value: torch.Tensor) -> None:
        if target.dtype == torch.bfloat16:
            target.copy_(stochastic_round_bf16(value, self._generator(value.device)))
        else:
            target.copy_(value)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    # torch.optim.AdamW's keys and layout, so its checkpoints load here and back.
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step = float(state["step"])
                step_size = lr / (1.0 - beta1**step)
                bias2_sqrt = math.sqrt(1.0 - beta2**step)
                weight = _local(p).view(-1)
                grad = _local(p.grad).view(-1)
                exp_avg = _local(state["exp_avg"]).view(-1)
                exp_avg_sq = _local(state["exp_avg_sq"]).view(-1)
                for start in range(0, weight.numel(), CHUNK):
                    end = min(start + CHUNK, weight.numel())
                    w = weight[start:end].float()
                    g = grad[start:end].float()
                    m = exp_avg[start:end].float().lerp_(g, 1.0 - beta1)
                    v = exp_avg_sq[start:end].float().mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                    if decay:
                        w.mul_(1.0 - lr * decay)
                    w.addcdiv_(m, v.sqrt().div_(bias2_sqrt).add_(eps), value=-step_size)
                    self._store(weight[start:end], w)
                    self._store(exp_avg[start:end], m)
                    self._store(exp_avg_sq[start:end], v)
        return loss
