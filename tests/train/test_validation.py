"""Lockstep validation under DDP: ranks holding unequal, ragged validation data run the same number of
equal-shape steps, every sample counts once, and the logged value is the sample-weighted mean over ranks;
for losses that gather over ranks (NT-Xent, Barlow Twins), 2 ranks give what 1 process holding both halves gives."""

import os

import pytest
import torch
import torch.multiprocessing as mp

from cpc.methods import BarlowTwins, BarlowTwinsConfig, SimCLR, SimCLRConfig
from cpc.models.encoders import ImageEncoderConfig
from cpc.train.validation import validate

from .helpers import global_batches, regression_method

BACKBONE = ImageEncoderConfig(channels=(8, 16), strides=(2, 2))
# Rank 0 holds three batches, rank 1 two, one of them short: steps 2 and 3 are ragged / padding only on rank 1.
ROWS = {0: [4, 4, 4], 1: [4, 2]}
SKIPPED = {0: {"too short": (1, ["c"])}, 1: {"corrupt audio": (2, ["a", "b"])}}


def methods():
    torch.manual_seed(0)
    built = {
        "cpc-regression": regression_method(),
        "simclr": SimCLR(SimCLRConfig(backbone=BACKBONE, proj_hidden=16, proj_dim=8)),
        "barlow": BarlowTwins(BarlowTwinsConfig(backbone=BACKBONE, proj_hidden=16, proj_dim=8)),
    }
    return {name: method.eval() for name, method in built.items()}


def rank_batches(name, rank):
    """Rank `rank`'s validation batches for method `name` (the same on every call)."""
    if name == "cpc-regression":
        whole = global_batches(3, batch=8)
        return [{"wav": whole[i]["wav"][4 * rank: 4 * rank + n]} for i, n in enumerate(ROWS[rank])]
    g = torch.Generator().manual_seed(10 + rank)
    return [{"views": torch.randn(n, 2, 3, 16, 16, generator=g)} for n in ROWS[rank]]


def worker(rank, world, port, results):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    for name, method in methods().items():
        batches = rank_batches(name, rank)
        batches[0]["skipped"] = SKIPPED[rank]  # what each rank's reader left out rides along with its batches
        means, samples, skips = validate(method.training_step, batches, torch.device("cpu"))
        results[(name, rank)] = means, samples
        results[("skips", rank)] = dict(skips.counts)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks():
    results = mp.Manager().dict()
    port = 29700 + os.getpid() % 1000
    mp.spawn(worker, args=(2, port, results), nprocs=2, join=True)
    return dict(results)


def test_every_rank_logs_the_same_sample_weighted_mean_and_every_sample_once(two_ranks):
    """CPC's loss is per sequence: the lockstep mean over 2 ranks equals the per-rank means weighted by each
    rank's sample count (each computed in one process on that rank's batches alone)."""
    method = methods()["cpc-regression"]
    per_rank = {rank: validate(method.training_step, rank_batches("cpc-regression", rank), torch.device("cpu"))[:2]
                for rank in ROWS}
    counts = {rank: sum(rows) for rank, rows in ROWS.items()}
    assert {rank: samples for rank, (_, samples) in per_rank.items()} == counts
    for rank in ROWS:
        means, samples = two_ranks[("cpc-regression", rank)]
        assert samples == sum(counts.values()) == 18
        for key, value in means.items():
            expected = sum(per_rank[r][0][key] * counts[r] for r in ROWS) / samples
            assert value == pytest.approx(expected, rel=1e-5), key


@pytest.mark.parametrize("name", ["simclr", "barlow"])
def test_gathered_losses_on_two_ranks_equal_one_process_holding_both_halves(two_ranks, name):
    """Step i of the lockstep loop sees rank 0's and rank 1's i-th batches as one global batch (padding left
    out): one process validating the concatenated batches, weighted by their sizes, logs the same."""
    method = methods()[name]
    halves = [rank_batches(name, rank) for rank in ROWS]
    steps = max(len(h) for h in halves)
    together = [{"views": torch.cat([h[i]["views"] for h in halves if i < len(h)])} for i in range(steps)]
    expected, samples, _ = validate(method.training_step, together, torch.device("cpu"))
    assert samples == 18
    for rank in ROWS:
        means, got_samples = two_ranks[(name, rank)]
        assert got_samples == samples and set(means) == set(expected)
        for key, value in expected.items():
            assert means[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_every_rank_reports_what_every_ranks_reader_skipped(two_ranks):
    # Each method's validation saw the same skip reports; the last one's counts are kept per rank.
    for rank in ROWS:
        assert two_ranks[("skips", rank)] == {"too short": 1, "corrupt audio": 2}
