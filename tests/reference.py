"""One way to compare a metric or loss with a reference, in the spirit of torchmetrics' ``MetricTester``.

A ``ReferenceCase`` names our function, an independent reference (smp, or the definition on
the host) and a generator of random inputs. ``check_reference`` draws inputs, runs ours on
the device under test and the reference on the CPU, and compares:

- batch-wise: the whole batch at once (value, and the input's gradient for losses);
- accumulated: the batch split into uneven chunks and put back together (per-image scores
  concatenated, or per-image means weighted by chunk size), which must equal the whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

Inputs = tuple[torch.Tensor, torch.Tensor]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]  # the gpu variant is skipped without CUDA


@dataclass(frozen=True)
class ReferenceCase:
    name: str
    ours: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    reference: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    inputs: Callable[[torch.Generator], Inputs]
    accumulate: str | None = "cat"  # "cat": per-image outputs; "mean": a mean over images; None: not decomposable
    gradient: bool = False  # also compare d(output)/d(first input)


def _run(fn: Callable, first: torch.Tensor, second: torch.Tensor, gradient: bool):
    first = first.clone().requires_grad_(gradient)
    value = fn(first, second)
    if not gradient:
        return value.detach(), None
    value.backward()
    return value.detach(), first.grad


def _accumulated(case: ReferenceCase, first: torch.Tensor, second: torch.Tensor, chunk: int) -> torch.Tensor:
    parts = [case.ours(first[i:i + chunk], second[i:i + chunk]) for i in range(0, len(first), chunk)]
    if case.accumulate == "cat":
        return torch.cat(parts)
    sizes = torch.tensor([min(chunk, len(first) - i) for i in range(0, len(first), chunk)], dtype=parts[0].dtype)
    return (torch.stack(parts) * sizes.to(parts[0].device)).sum() / sizes.sum()


def check_reference(case: ReferenceCase, device: str, *, draws: int = 10, chunks: tuple[int, ...] = (1, 3),
                    rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Compare ``case.ours`` on ``device`` with ``case.reference`` on the CPU over ``draws`` random inputs."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(draws):
        first, second = case.inputs(generator)
        expected, expected_grad = _run(case.reference, first, second, case.gradient)
        value, grad = _run(case.ours, first.to(device), second.to(device), case.gradient)
        assert value.device.type == torch.device(device).type
        torch.testing.assert_close(value.cpu().to(expected.dtype), expected, rtol=rtol, atol=atol)
        if case.gradient:
            torch.testing.assert_close(grad.cpu(), expected_grad, rtol=rtol, atol=atol)
        if case.accumulate is not None:
            for chunk in chunks:
                whole = _accumulated(case, first.to(device), second.to(device), chunk)
                torch.testing.assert_close(whole.cpu().to(expected.dtype), expected, rtol=rtol, atol=atol)


def mixed_masks(generator: torch.Generator, n: int = 8, size: int = 16) -> Inputs:
    """Probabilities and binary masks with empty, sparse and dense targets and some empty predictions."""
    pred = torch.rand(n, 1, size, size, generator=generator)
    density = torch.rand(n, 1, 1, 1, generator=generator) * (torch.arange(n) % 3 != 0).view(n, 1, 1, 1)
    target = (torch.rand(n, 1, size, size, generator=generator) < density).float()
    pred[torch.arange(n) % 4 == 0] *= 0.4  # all below 0.5: empty predictions, one with an empty target
    return pred, target


def logits_and_masks(generator: torch.Generator, n: int = 6, size: int = 24) -> Inputs:
    logits = torch.randn(n, 1, size, size, generator=generator) * 3
    target = (torch.rand(n, 1, size, size, generator=generator) < 0.2).float()
    target[::3] = 0  # images without any positive pixel
    return logits, target


def host_dice(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image Dice by the definition, one image at a time in NumPy (empty vs empty: 1)."""
    scores = []
    for p, t in zip(pred.numpy().reshape(len(pred), -1) > 0.5, target.numpy().reshape(len(target), -1) > 0.5):
        total = p.sum() + t.sum()
        scores.append(1.0 if total == 0 else 2 * (p & t).sum() / total)
    return torch.tensor(np.array(scores), dtype=torch.float32)
