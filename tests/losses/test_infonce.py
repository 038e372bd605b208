import math

import pytest
import torch

from cpc.losses import infonce
from cpc.losses.infonce import chance_loss, info_nce, sample_negatives


def reference_info_nce(pred, z, negative_idx, temperature, scale_by_dim, exclude_positive):
    """Explicit loops over sequence, position and step: the obviously-correct version."""
    batch, frames, steps, dim = pred.shape
    positions = frames - steps
    flat = z.reshape(batch * frames, dim)
    scale = 1.0 / (temperature * (dim if scale_by_dim else 1))
    losses = torch.zeros(steps)
    correct = torch.zeros(steps)
    for k in range(steps):
        for b in range(batch):
            for t in range(positions):
                p = pred[b, t, k]
                positive_index = b * frames + t + k + 1
                assert torch.equal(flat[positive_index], z[b, t + k + 1])
                positive = (p @ z[b, t + k + 1]) * scale
                drawn = negative_idx[b, t].tolist()
                negatives = [(p @ flat[j]) * scale for j in drawn if not (exclude_positive and j == positive_index)]
                others = [(p @ flat[j]) * scale for j in drawn if j != positive_index]
                logits = torch.stack([positive] + negatives)
                losses[k] += -torch.log_softmax(logits, dim=0)[0]
                correct[k] += float(all(positive > other for other in others))
    count = batch * positions
    return losses / count, correct / count


@pytest.mark.parametrize("policy", ["batch", "same_sequence", "same_speaker"])
@pytest.mark.parametrize("exclude_positive", [True, False])
@pytest.mark.parametrize("temperature, scale_by_dim", [(1.0, True), (0.3, False)])
@pytest.mark.parametrize("strategy", ["dense", "gather"])
def test_matches_reference(policy, exclude_positive, temperature, scale_by_dim, strategy):
    g = torch.Generator().manual_seed(1)
    batch, frames, steps, dim, n = 3, 9, 3, 5, 7
    pred = torch.randn(batch, frames, steps, dim, generator=g)
    z = torch.randn(batch, frames, dim, generator=g)
    speakers = torch.tensor([4, 9, 4])
    idx = sample_negatives(policy, batch, frames, frames - steps, n, speakers=speakers, generator=g)
    out = info_nce(pred, z, idx, temperature, scale_by_dim, exclude_positive, strategy)
    loss, acc = reference_info_nce(pred, z, idx, temperature, scale_by_dim, exclude_positive)
    assert torch.allclose(out.loss_per_step, loss, atol=1e-5)
    assert torch.allclose(out.accuracy_per_step, acc)
    assert torch.allclose(out.loss, loss.mean(), atol=1e-5)


@pytest.mark.parametrize("strategy, block_elements", [("dense", 1 << 21), ("dense", 40), ("gather", None)])
def test_gradients_match_reference(strategy, block_elements, monkeypatch):
    if block_elements:  # 40 elements = 2 rows of the 16-frame pool: many blocks, each a whole position's K rows
        monkeypatch.setitem(infonce.BLOCK_ELEMENTS, "cpu", block_elements)
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(2, 8, 2, 4, generator=g, requires_grad=True)
    z = torch.randn(2, 8, 4, generator=g, requires_grad=True)
    idx = sample_negatives("same_sequence", 2, 8, 6, 5, generator=g)
    info_nce(pred, z, idx, strategy=strategy).loss.backward()
    fast = pred.grad.clone(), z.grad.clone()
    pred.grad = z.grad = None
    loss, _ = reference_info_nce(pred, z, idx, 1.0, True, True)
    loss.mean().backward()
    assert torch.allclose(fast[0], pred.grad, atol=1e-6) and torch.allclose(fast[1], z.grad, atol=1e-6)


def test_policies_draw_only_from_their_pool():
    g = torch.Generator().manual_seed(3)
    batch, frames = 6, 10
    speakers = torch.tensor([0, 1, 0, 2, 1, 0])
    same_seq = sample_negatives("same_sequence", batch, frames, 4, 500, generator=g)
    assert torch.equal(same_seq // frames, torch.arange(batch)[:, None, None].expand_as(same_seq))
    same_spk = sample_negatives("same_speaker", batch, frames, 4, 500, speakers=speakers, generator=g)
    sequences = same_spk // frames
    assert torch.equal(speakers[sequences], speakers[:, None, None].expand_as(sequences))
    # every allowed sequence is reached (uniform over the pool), and every frame index
    assert set((same_spk[0] // frames).unique().tolist()) == {0, 2, 5}
    assert set((same_spk % frames).unique().tolist()) == set(range(frames))
    everywhere = sample_negatives("batch", batch, frames, 4, 500, generator=g)
    assert set(everywhere.unique().tolist()) == set(range(batch * frames))


def test_perfect_predictions_score_full_accuracy_and_chance_is_ln_n_plus_1():
    g = torch.Generator().manual_seed(4)
    batch, frames, steps, dim = 4, 20, 3, 32
    z = torch.nn.functional.normalize(torch.randn(batch, frames, dim, generator=g), dim=-1) * 10
    future = torch.stack([torch.roll(z, -k, dims=1) for k in range(1, steps + 1)], dim=2)
    idx = sample_negatives("batch", batch, frames, frames - steps, 16, generator=g)
    out = info_nce(future, z, idx, scale_by_dim=False)
    assert out.accuracy_per_step.min() == 1.0 and out.loss < 0.1
    blind = info_nce(torch.zeros(batch, frames, steps, dim), z, idx, exclude_positive=False)
    assert math.isclose(blind.loss.item(), chance_loss(16), rel_tol=1e-6)


def test_positive_never_counted_as_negative():
    # Same-sequence negatives on a 2-frame window with K=1: the only candidates are the anchor and the positive.
    g = torch.Generator().manual_seed(5)
    pred = torch.randn(2, 2, 1, 3, generator=g)
    z = torch.randn(2, 2, 3, generator=g)
    idx = torch.tensor([[[0, 1, 1]], [[3, 3, 2]]])
    out = info_nce(pred, z, idx)
    loss, _ = reference_info_nce(pred, z, idx, 1.0, True, True)
    assert torch.allclose(out.loss_per_step, loss)


def test_stable_under_bf16_autocast_with_large_scores():
    pred = torch.randn(2, 16, 2, 8) * 1e3
    z = torch.randn(2, 16, 8) * 1e3
    idx = sample_negatives("batch", 2, 16, 14, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = info_nce(pred, z, idx, scale_by_dim=False)
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32


def test_bad_inputs():
    with pytest.raises(ValueError, match="K = 5 prediction steps need more than 5 frames; the sequence has 5"):
        info_nce(torch.randn(1, 5, 5, 4), torch.randn(1, 5, 4), torch.zeros(1, 0, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="same_speaker.*shape \\(3,\\); got None"):
        sample_negatives("same_speaker", 3, 10, 5, 4)
    with pytest.raises(ValueError, match="unknown InfoNCE strategy 'fast'"):
        info_nce(torch.randn(1, 5, 2, 4), torch.randn(1, 5, 4), torch.zeros(1, 3, 2, dtype=torch.long), strategy="fast")
    with pytest.raises(ValueError, match="unknown negative policy 'speaker'"):
        sample_negatives("speaker", 3, 10, 5, 4)


@pytest.mark.parametrize("policy", ["batch", "same_speaker"])
def test_padding_rows_are_never_negatives_and_weigh_nothing(policy):
    """Lockstep validation pads a short batch with zero rows marked invalid: the loss over the padded batch equals
    the loss over its real rows alone."""
    g = torch.Generator().manual_seed(4)
    batch, frames, steps, dim, n = 4, 9, 2, 5, 50
    pred = torch.randn(batch, frames, steps, dim, generator=g)
    z = torch.randn(batch, frames, dim, generator=g)
    valid = torch.tensor([1.0, 1.0, 1.0, 0.0])
    speakers = torch.tensor([3, 3, 5, 0])
    idx = sample_negatives(policy, batch, frames, frames - steps, n, speakers=speakers, generator=g, valid=valid)
    assert (idx[:3] // frames < 3).all()  # real rows draw only real sequences
    padded = info_nce(pred, z, idx, weights=valid)
    alone = info_nce(pred[:3], z[:3], idx[:3])
    assert torch.allclose(padded.loss_per_step, alone.loss_per_step, atol=1e-6)
    assert torch.allclose(padded.accuracy_per_step, alone.accuracy_per_step)
    only_padding = sample_negatives(policy, batch, frames, frames - steps, n, speakers=speakers, generator=g,
                                    valid=torch.zeros(batch))
    assert only_padding.shape == (batch, frames - steps, n)  # a rank with no data left still takes part
