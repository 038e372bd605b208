"""Validation that every rank runs in lockstep: the same number of steps, each on a batch of the same shape.

Ranks rarely hold equal validation data (one shard, ranks x workers > shards, ragged last batches), and losses that
gather over ranks (NT-Xent, Barlow Twins) need every rank in every collective with equal shapes. So each step
asks whether any rank still has a batch; a rank that has run out, or holds a short batch, pads it with zero rows
marked invalid (`batch["valid"]`, 0.0), which the methods leave out of their losses and metrics. Every sample is
read once, and the logged value is the mean over all samples of all ranks.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from cpc.data.stages import SkipCounter
from cpc.train import distributed


def tensor_shapes(batch: dict[str, Any] | None) -> dict[str, tuple[tuple[int, ...], torch.dtype]] | None:
    if batch is None:
        return None
    return {k: (tuple(v.shape), v.dtype) for k, v in batch.items() if isinstance(v, torch.Tensor)}


def common_template(batch: dict[str, Any] | None) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The shape every rank pads its batches to: the fields all ranks' first batches carry, with the largest
    batch dimension (the configured batch size, unless every rank's data is shorter)."""
    shapes = [s for s in distributed.gather_objects(tensor_shapes(batch)) if s is not None]
    template = {}
    for key in set.intersection(*(set(s) for s in shapes)):
        rest = {s[key][0][1:] for s in shapes}
        if len(rest) > 1:
            raise ValueError(f"validation batches differ in shape across ranks for {key!r}: {sorted(rest)}")
        template[key] = ((max(s[key][0][0] for s in shapes), *rest.pop()), shapes[0][key][1])
    return template


def padded(batch: dict[str, Any] | None, template: dict[str, tuple[tuple[int, ...], torch.dtype]],
           device: torch.device) -> dict[str, torch.Tensor]:
    """`batch`'s tensor fields padded along dim 0 to the template with zero rows, plus "valid" (batch,) marking
    the real rows 1.0; None gives a batch of padding only."""
    rows = 0 if batch is None else len(next(v for k, v in batch.items() if k in template))
    out = {}
    for key, (shape, dtype) in template.items():
        real = batch[key].to(device) if batch is not None else torch.zeros((0, *shape[1:]), dtype=dtype, device=device)
        out[key] = torch.cat([real, real.new_zeros((shape[0] - rows, *shape[1:]))])
    out["valid"] = (torch.arange(template[next(iter(template))][0][0], device=device) < rows).float()
    return out


@torch.no_grad()
def validate(step: Callable[[dict[str, Any]], tuple[Any, dict[str, torch.Tensor]]], batches: Iterable[dict],
             device: torch.device, max_batches: int = 0) -> tuple[dict[str, float], int, SkipCounter]:
    """(The sample-weighted mean of `step`'s logs over every rank's batches, the samples seen on all ranks, what
    every rank's readers skipped); `max_batches` > 0 stops after that many lockstep steps."""
    iterator = iter(batches)
    template, sums, count, done = None, None, torch.zeros((), dtype=torch.float64, device=device), 0
    skips = SkipCounter()
    multi = distributed.active()
    while not max_batches or done < max_batches:
        batch = next(iterator, None)
        if batch is not None:
            skips.merge(batch.pop("skipped", {}))
        if multi:
            more = distributed.max_over_ranks(torch.tensor(float(batch is not None), device=device))
            if not more.item():
                break
            template = template or common_template(batch)
            batch = padded(batch, template, device)
        elif batch is None:
            break
        else:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        weight = batch["valid"].sum() if "valid" in batch else torch.tensor(
            float(len(next(v for v in batch.values() if isinstance(v, torch.Tensor)))), device=device)
        _, logs = step(batch)
        values = torch.stack([logs[k].detach().double() for k in sorted(logs)]) * weight
        sums = values if sums is None else sums + values
        count += weight
        done += 1
    if multi:  # every rank's skips, on every rank
        reports, skips = distributed.gather_objects(skips.drain()), SkipCounter()
        for report in reports:
            skips.merge(report)
    if sums is None:
        return {}, 0, skips
    total = distributed.sum_over_ranks(torch.cat([sums, count[None]]))
    means = (total[:-1] / total[-1].clamp_min(1)).tolist()
    return dict(zip(sorted(logs), means)), int(total[-1].item()), skips
