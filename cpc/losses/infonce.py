"""Multi-step InfoNCE: score the prediction of z_{t+k} made at c_t against the true frame and N negatives.

Negatives are drawn once per position t and shared by all K steps (as in CPC_audio); the positive of each step k
is then masked out of that shared set, so no row ever counts its own positive as a negative. Negative scores come
from one of two equivalent computations, whichever is cheaper for the batch at hand: one dense matmul of every
prediction against every frame of the batch followed by a gather of scores (best while the batch holds at most
`DENSE_POOL_RATIO` x N frames: a GEMM, and no (batch, positions, N, dim) tensor in memory), or a gather of the
negative vectors followed by a batched matmul (linear in batch size). Logits are reduced with log-sum-exp in
float32, which is safe under fp16/bf16 autocast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from einops import rearrange

from cpc.config import Rules

STRATEGIES = ("auto", "dense", "gather")
# Dense scoring does (frames in batch / N) times the multiply-adds of the gather, but as one GEMM it stays faster
# up to about this ratio (measured on 2 CPU cores: 168 ms dense vs 199 ms gather at ratio 8, forward + backward).
# On a GPU the GEMMs are far cheaper than the gather's (batch, positions, N, dim) tensor (1-4 GB at batch
# 64-256), so dense scoring pays longer, in larger blocks. The CUDA values are a first setting, not yet measured:
# tools/gpu_check.py times both paths.
DENSE_POOL_RATIO = {"cpu": 8, "cuda": 64}
BLOCK_ELEMENTS = {"cpu": 1 << 21, "cuda": 1 << 26}  # scores per block: 8 MB of fp32 on CPU, 256 MB on a GPU


@dataclass
class InfoNCEConfig:
    negatives: int = 128  # N per position
    policy: str = "batch"  # a key of POLICIES: "batch", "same_sequence" or "same_speaker"
    exclude_positive: bool = True
    temperature: float = 1.0
    scale_by_dim: bool = True  # divide scores by the frame dimension (CPC_audio's /256), before the temperature

    def check(self, rules: Rules) -> None:
        """A ConfigError for the first setting of this section (`rules`, e.g. cpc.infonce) that cannot work."""
        rules.one_of("policy", POLICIES)
        rules.at_least(1, "negatives")
        rules.positive("temperature")


@dataclass
class InfoNCEOutput:
    loss: torch.Tensor  # scalar: mean over steps of the per-step mean cross-entropy; ln(N + 1) at chance
    loss_per_step: torch.Tensor  # (K,)
    accuracy_per_step: torch.Tensor  # (K,) fraction of rows whose positive outscores every other negative frame


def batch_pool(shape: tuple[int, int, int], speakers, generator, device, valid) -> torch.Tensor:
    """Negatives from any sequence of the batch (real sequences only, when `valid` marks padding)."""
    batch = shape[0]
    if valid is not None:
        return torch.multinomial(valid, math.prod(shape), replacement=True, generator=generator).view(shape)
    return torch.randint(0, batch, shape, generator=generator, device=device)


def same_sequence_pool(shape: tuple[int, int, int], speakers, generator, device, valid) -> torch.Tensor:
    """Negatives from the position's own sequence."""
    return torch.arange(shape[0], device=device)[:, None, None].expand(shape)


def same_speaker_pool(shape: tuple[int, int, int], speakers, generator, device, valid) -> torch.Tensor:
    """Negatives from the sequences of the position's speaker (`speakers`: one id per sequence)."""
    batch, positions, n = shape
    if speakers is None or speakers.shape != (batch,):
        got = None if speakers is None else tuple(speakers.shape)
        raise ValueError(f"policy 'same_speaker' needs one speaker id per sequence, shape ({batch},); got {got}")
    same = (speakers[:, None] == speakers[None, :]).to(device=device, dtype=torch.float)
    if valid is not None:  # real sequences of the same speaker; a padding row draws from itself
        same = torch.maximum(same * valid[None, :], torch.eye(batch, device=device))
    return torch.multinomial(same, positions * n, replacement=True, generator=generator).view(shape)


# The negative policies a config may name: name -> (shape (batch, positions, n), speakers, generator, device,
# valid) -> the sequence each negative comes from, (batch, positions, n). A new policy is a function and a line.
POLICIES: dict[str, Callable[..., torch.Tensor]] = {
    "batch": batch_pool, "same_sequence": same_sequence_pool, "same_speaker": same_speaker_pool,
}


def sample_negatives(
    policy: str,
    batch: int,
    frames: int,
    positions: int,
    n: int,
    speakers: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Indices (batch, positions, n) into the flattened (batch * frames) frames, drawn uniformly from the pool
    the policy allows (POLICIES): any frame of the batch, frames of the same sequence, or frames of same-speaker
    sequences. `valid` (batch,) 1/0 marks real sequences (lockstep validation pads with zero rows): padding is
    never a negative of a real sequence."""
    if policy not in POLICIES:
        raise ValueError(f"unknown negative policy {policy!r}; choose one of {tuple(POLICIES)}")
    shape = (batch, positions, n)
    frame = torch.randint(0, frames, shape, generator=generator, device=device)
    if valid is not None:
        valid = valid.to(device=device, dtype=torch.float)
        # A batch of padding only: draw uniformly (its rows weigh nothing); no host sync to find out.
        valid = valid + (1 - valid.amax())
    sequence = POLICIES[policy](shape, speakers, generator, device, valid)
    return sequence * frames + frame


def info_nce(
    pred: torch.Tensor,
    z: torch.Tensor,
    negative_idx: torch.Tensor,
    temperature: float = 1.0,
    scale_by_dim: bool = True,
    exclude_positive: bool = True,
    strategy: str = "auto",
    weights: torch.Tensor | None = None,
) -> InfoNCEOutput:
    """pred (B, T, K, D): row [:, t, k-1] predicts z[:, t+k]; z (B, T, D); negative_idx (B, T-K, N) from
    `sample_negatives`. Positions t = 0 .. T-K-1 (those with all K futures) are scored. `weights` (B,) weigh each
    sequence in the means (0 leaves padding out)."""
    if pred.dim() != 4 or z.dim() != 3 or pred.shape[0] != z.shape[0] or pred.shape[1] != z.shape[1]:
        raise ValueError(f"info_nce expects pred (B, T, K, D) and z (B, T, D); got {tuple(pred.shape)}, {tuple(z.shape)}")
    batch, frames, steps, dim = pred.shape
    if z.shape[2] != dim:
        raise ValueError(f"prediction dim {dim} differs from frame dim {z.shape[2]}")
    positions = frames - steps
    if positions < 1:
        raise ValueError(f"K = {steps} prediction steps need more than {steps} frames; the sequence has {frames}")
    if negative_idx.shape[:2] != (batch, positions):
        raise ValueError(f"negative_idx must be ({batch}, {positions}, N); got {tuple(negative_idx.shape)}")

    pred = pred[:, :positions].contiguous()  # one copy, shared by the positive and negative scores and by backward
    # positives[b, p, :, k] = z[b, p + 1 + k]: a strided view, no copy.
    positives = z[:, 1:].unfold(1, steps, 1)
    # Multiply-and-sum rather than einsum: a batched matmul would copy the strided view and keep the copy for backward.
    positive_scores = (pred * positives.transpose(2, 3)).sum(dim=-1)
    negative_scores = score_negatives(pred, z.reshape(batch * frames, dim), negative_idx, strategy)
    positive_idx = (
        torch.arange(batch, device=z.device)[:, None, None] * frames
        + torch.arange(positions, device=z.device)[None, :, None]
        + torch.arange(1, steps + 1, device=z.device)[None, None, :]
    )
    is_positive = negative_idx[:, :, None, :] == positive_idx[..., None]  # (B, P, K, N)
    other_scores = negative_scores.masked_fill(is_positive, float("-inf"))
    if exclude_positive:
        negative_scores = other_scores

    scale = 1.0 / (temperature * (dim if scale_by_dim else 1.0))
    logits = torch.cat([positive_scores.unsqueeze(-1), negative_scores], dim=-1).float() * scale
    losses = torch.logsumexp(logits, dim=-1) - logits[..., 0]  # cross-entropy with the positive at index 0
    # Correct = the positive outscores every other frame; a drawn copy of the positive frame cannot be beaten.
    correct = positive_scores > other_scores.amax(dim=-1)
    loss_per_step = per_step_mean(losses, weights)
    accuracy_per_step = per_step_mean(correct.float(), weights)
    return InfoNCEOutput(loss_per_step.mean(), loss_per_step, accuracy_per_step)


def per_step_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """values (B, P, K) -> (K,): the mean over sequences and positions, sequences weighted by `weights` (B,)."""
    if weights is None:
        return rearrange(values, "b p k -> k (b p)").mean(dim=1)
    weights = weights.to(values.dtype)
    values = torch.where(weights[:, None, None] > 0, values, 0)  # padding rows may hold anything, even NaN
    total = torch.einsum("bpk,b->k", values, weights)
    return total / (weights.sum() * values.shape[1]).clamp_min(1e-12)


class DenseGatheredScores(torch.autograd.Function):
    """scores[b, p, k, n] = pred[b, p, k] . frames[idx[b, p, n]], computed by GEMMs against every frame.

    The (B*P*K, pool) score matrix is built in row blocks of at most `BLOCK_ELEMENTS` and never kept: autograd's
    own gather would keep all of it alive for backward and allocate two more of its size there. Blocks hold whole
    positions (all K rows of each), so each block expands its own slice of the (B*P, N) index K-fold and only the
    unexpanded index is kept for backward.
    """

    @staticmethod
    def forward(ctx, pred, frames, negative_idx):
        steps = pred.shape[2]
        rows = pred.reshape(-1, pred.shape[-1])  # (B*P*K, D), K rows per position
        index = negative_idx.reshape(-1, negative_idx.shape[-1])  # (B*P, N)
        ctx.save_for_backward(rows, frames, index)
        ctx.pred_shape = pred.shape
        blocks = [torch.gather(rows[block] @ frames.T, 1, expand_rows(index, block, steps))
                  for block in row_blocks(rows.shape[0], frames.shape[0], steps, rows.device)]
        return torch.cat(blocks).view(*pred.shape[:3], -1)

    @staticmethod
    def backward(ctx, grad_scores):
        rows, frames, index = ctx.saved_tensors
        steps = ctx.pred_shape[2]
        grad_scores = grad_scores.reshape(rows.shape[0], -1)
        frames_ = frames.to(grad_scores.dtype)
        grad_rows = torch.empty_like(rows, dtype=grad_scores.dtype)
        # Summed over every block: float32, or bf16/fp16 blocks would lose the small ones.
        grad_frames = torch.zeros_like(frames, dtype=torch.float32)
        for block in row_blocks(rows.shape[0], frames.shape[0], steps, rows.device):
            grad_every = grad_scores.new_zeros(block.stop - block.start, frames.shape[0])
            grad_every.scatter_add_(1, expand_rows(index, block, steps), grad_scores[block])
            torch.mm(grad_every, frames_, out=grad_rows[block])
            grad_frames += grad_every.T @ rows[block].to(grad_every.dtype)
        return grad_rows.view(ctx.pred_shape).to(rows.dtype), grad_frames.to(frames.dtype), None


def row_blocks(rows: int, pool: int, multiple: int, device: torch.device) -> list[slice]:
    """Slices of about BLOCK_ELEMENTS / pool rows (small enough to stay out of the memory peak, large enough
    for fast GEMMs), each a whole number of `multiple`-row groups."""
    elements = BLOCK_ELEMENTS.get(device.type, BLOCK_ELEMENTS["cpu"])
    step = max(1, elements // pool // multiple) * multiple
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def expand_rows(index: torch.Tensor, block: slice, steps: int) -> torch.Tensor:
    """The negative indices of score rows `block` (each position's row of `index` repeated for its K steps)."""
    return index[block.start // steps: block.stop // steps].repeat_interleave(steps, dim=0)


def score_negatives(pred: torch.Tensor, frames: torch.Tensor, negative_idx: torch.Tensor, strategy: str) -> torch.Tensor:
    """pred (B, P, K, D), frames (pool, D), negative_idx (B, P, N) into frames -> scores (B, P, K, N)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown InfoNCE strategy {strategy!r}; choose one of {STRATEGIES}")
    # Cast once, first: under autocast pred is bf16/fp16 while a channel-norm encoder's frames are float32, and
    # the gather's (B, P, N, D) copy (or every dense block's GEMM) would otherwise hold or cast float32 frames.
    frames = frames.to(pred.dtype)
    n = negative_idx.shape[2]
    ratio = DENSE_POOL_RATIO.get(frames.device.type, DENSE_POOL_RATIO["cpu"])
    if strategy == "dense" or (strategy == "auto" and frames.shape[0] <= ratio * n):
        return DenseGatheredScores.apply(pred, frames, negative_idx)
    negatives = frames.index_select(0, negative_idx.reshape(-1)).view(*negative_idx.shape, -1)
    return torch.einsum("bpkd,bpnd->bpkn", pred, negatives)


def chance_loss(negatives: int) -> float:
    """InfoNCE loss of a model that cannot tell the positive from N negatives: ln(N + 1)."""
    return math.log(negatives + 1)
