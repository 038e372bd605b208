"""cpc.eval.units: k-means recovers well-separated clusters, is deterministic under its seed, samples frames
uniformly in bounded memory, and its units file reads back safely."""

import pytest
import torch

from cpc.eval.units import (Units, UnitsError, assign, faiss_available, fit_units, load_units, sample_frames,
                            save_units)


def blobs(k=6, dim=8, n=6000, spread=0.2, seed=1):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g) * 5
    labels = torch.randint(k, (n,), generator=g)
    return centres, labels, centres[labels] + spread * torch.randn(n, dim, generator=g)


def test_kmeans_recovers_well_separated_clusters():
    centres, labels, x = blobs()
    units = fit_units(x, k=6, seed=0, batch_size=500, epochs=5, backend="torch", device="cpu")
    match = torch.cdist(centres, units.centroids).argmin(1)
    assert sorted(match.tolist()) == list(range(6))  # one centroid per cluster
    assert torch.cdist(centres, units.centroids).min(1).values.max() < 0.05
    ids = assign(x, units.centroids)
    assert torch.equal(ids, match[labels])  # every frame in its cluster's unit
    assert units.inertia == pytest.approx(8 * 0.2**2, rel=0.1) and units.frames == 6000 and units.k == 6


def test_kmeans_is_deterministic_under_its_seed():
    _, _, x = blobs(k=20, n=3000, spread=2.0)
    first = fit_units(x, k=12, seed=3, batch_size=256, epochs=3, backend="torch", device="cpu")
    again = fit_units(x, k=12, seed=3, batch_size=256, epochs=3, backend="torch", device="cpu")
    other = fit_units(x, k=12, seed=4, batch_size=256, epochs=3, backend="torch", device="cpu")
    assert torch.equal(first.centroids, again.centroids)
    assert not torch.equal(first.centroids, other.centroids)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_kmeans_on_cuda_is_deterministic_and_finds_the_clusters():
    centres, labels, x = blobs()
    one = fit_units(x, k=6, seed=0, batch_size=500, epochs=5, backend="torch", device="cuda")
    two = fit_units(x, k=6, seed=0, batch_size=500, epochs=5, backend="torch", device="cuda")
    assert torch.equal(one.centroids, two.centroids)
    assert torch.cdist(centres, one.centroids).min(1).values.max() < 0.05


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed (pip install faiss-cpu)")
def test_faiss_backend_recovers_the_clusters():
    centres, _, x = blobs()
    units = fit_units(x, k=6, seed=0, epochs=10, backend="faiss", device="cpu")
    assert units.backend == "faiss" and torch.cdist(centres, units.centroids).min(1).values.max() < 0.05


def test_sample_frames_is_uniform_bounded_and_seeded():
    arrays = [torch.arange(start, start + 50, dtype=torch.float32)[:, None].repeat(1, 2) for start in range(0, 5000, 50)]
    picked = sample_frames(arrays, 500, seed=0)
    rows = picked[:, 0].long()
    assert picked.shape == (500, 2) and len(set(rows.tolist())) == 500
    assert torch.equal(sample_frames(arrays, 500, seed=0), picked)
    assert not torch.equal(sample_frames(arrays, 500, seed=1), picked)
    assert abs(int((rows < 2500).sum()) - 250) < 60  # both halves of the stream alike
    assert len(sample_frames(arrays[:2], 500)) == 100  # fewer frames than asked: all of them
    with pytest.raises(UnitsError, match="no frames"):
        sample_frames([], 10)


def test_units_file_round_trip_and_errors(tmp_path):
    units = Units(torch.randn(5, 3), layer="z", model="/runs/x/step-1.pt", frame_seconds=0.02, seed=9, frames=40,
                  inertia=1.5)
    save_units(units, tmp_path / "u.pt")
    back = load_units(tmp_path / "u.pt")
    assert torch.equal(back.centroids, units.centroids) and back == Units(**{**vars(units), "centroids": back.centroids})
    assert torch.load(tmp_path / "u.pt", weights_only=True)["format"] == "cpc-units/1"
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(UnitsError, match="not a units file"):
        load_units(tmp_path / "other.pt")
    with pytest.raises(UnitsError, match="does not exist"):
        load_units(tmp_path / "none.pt")
    with pytest.raises(UnitsError, match="at least 5 frames"):
        fit_units(torch.randn(3, 2), k=5)
    with pytest.raises(UnitsError, match="do not fit centroids of dim 3"):
        assign(torch.randn(4, 2), units.centroids)
