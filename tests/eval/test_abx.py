"""cpc.eval.abx (items, frames, dtw, cells, score) with cpc.eval.sources: the reference's own unit-test vectors,
DTW against a plain loop, frame selection, item files, feature sources, subsampling, unit features, clear errors,
and agreement with `zrc_abx2` (skipped only where the zerospeech-libriabx2 package is not installed)."""

import contextlib
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cpc.eval.abx.cells import draw_items, group_items
from cpc.eval.abx.dtw import Workspace, dtw, frame_distances
from cpc.eval.abx.frames import item_frames, load_frames, normalize_with_singularity
from cpc.eval.abx.items import ITEM_HEADER, ItemTable, read_items, write_items
from cpc.eval.abx.score import abx_errors, cell_errors
from cpc.eval.sources import load_feature_folder, load_feature_shards

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "synthetic_speech" / "sample"
KEYS = ["within-within", "across-within", "within-any", "across-any"]


# ------------------------------------------------------------------------------------------------ helpers
def loop_dtw(d: np.ndarray) -> np.float32:
    """The DTW recurrence and backtrack written as plain loops in float32 (an independent oracle)."""
    n, m = d.shape
    c = np.empty((n, m), dtype=np.float32)
    c[0, 0] = d[0, 0]
    for i in range(1, n):
        c[i, 0] = d[i, 0] + c[i - 1, 0]
    for j in range(1, m):
        c[0, j] = d[0, j] + c[0, j - 1]
    for i in range(1, n):
        for j in range(1, m):
            c[i, j] = d[i, j] + min(c[i - 1, j], c[i - 1, j - 1], c[i, j - 1])
    i, j, length = n - 1, m - 1, 1
    while i > 0 and j > 0:
        up, left, diag = c[i - 1, j], c[i, j - 1], c[i - 1, j - 1]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        length += 1
    return np.float32(c[-1, -1]) / np.float32(length + i + j)


def reference_missing() -> str | None:
    """Why the reference zrc_abx2 cannot run here, or None."""
    try:
        import zrc_abx2.eval_ABX  # noqa: F401  (imports the compiled libri_light_dtw)
    except ImportError as error:
        return str(error)
    return None


def reference_scores(features: dict, item_path, tmp_path, max_size_group=1000, max_x_across=1000,
                     context_modes=("within", "any"), speaker_modes=("within", "across"), seed=3459):
    """zrc_abx2 on the same features (written as .npy, listed in item-file order) -> {key: percent}."""
    try:
        from zrc_abx2.ABX_src.models import Pooling
        from zrc_abx2.eval_ABX import EvalABX, _load_npy
    except ImportError as error:
        pytest.skip(f"reference zrc_abx2 unavailable ({error}); `make test` installs zerospeech-libriabx2, whose "
                    "build needs a C compiler and Cython")

    folder = tmp_path / "reference_features"
    folder.mkdir(exist_ok=True)
    for name, array in features.items():
        np.save(folder / f"{name}.npy", np.asarray(array, dtype=np.float32))
    files = list(dict.fromkeys(read_items(item_path).files.tolist()))
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = EvalABX()._ABX(Pooling.NONE, seed, _load_npy, str(item_path),
                                [(f, str(folder / f"{f}.npy")) for f in files], "cosine", 1 / 0.01,
                                list(speaker_modes), list(context_modes), max_x_across=max_x_across,
                                max_size_group=max_size_group)
    return {key: 100 * value for key, value in scores.items()}


@pytest.fixture(scope="module")
def phones():
    return (SAMPLE / "phones.txt").read_text().split()


@pytest.fixture(scope="module")
def test_utterances():
    from cpc.data.labelled import load_utterances

    return sorted(load_utterances(str(SAMPLE / "test")), key=lambda u: (u.speaker, u.key))


def logmel(utterances) -> dict[str, np.ndarray]:
    from cpc.models.encoders import LogMelFrames

    mel = LogMelFrames(16000, 160, n_mels=40)
    with torch.no_grad():
        return {u.key: mel(u.wav[None])[0].numpy() for u in utterances}


def item_file(utterances, path, phones, unit="phone") -> Path:
    write_items({u.key: u.labels.numpy() for u in utterances}, {u.key: u.speaker for u in utterances}, path,
                unit=unit, phones=phones)
    return path


@pytest.fixture(scope="module")
def small_set(test_utterances, phones, tmp_path_factory):
    """Three speakers x two utterances, log-mel frames, phone items (every mode has cells)."""
    utterances = test_utterances[:6]
    return logmel(utterances), item_file(utterances, tmp_path_factory.mktemp("abx") / "phone.item", phones)


# ------------------------------------------------------------------------- the reference's unit-test vectors
# Inputs and expected outputs ported from facebookresearch/libri-light eval/ABX_src/unit_tests.py
# (TestDistancesDTW, testSingularityNormalization, testItemLoader, testABXFeatureLoader) and its test_data/.
REF_X = [[[0, 1], [0, 0], [1, 1], [42, 42]], [[0, 2], [0, 1], [1, 1], [-1, 0]], [[0, 0], [0, 1], [0, 0], [21, 211]]]
REF_X_SIZE = [3, 4, 2]
REF_Y = [[[0, 1], [1, 2], [0, 0]]]
DUMMY_ITEMS = """#file onset offset #phone prev-phone next-phone speaker
2107 0.3225 0.5225 n ae d 8193
2107 0.4225 0.5925 d n l 2222
42 0.4525 0.6525 d n l 2222
42 0.5225 0.7325 ih l n 8193
42 0.5925 0.8725 n ih s 8193
23 0.6525 1.1025 s n ax 8193
23 0.7325 1.1925 s n ax 2222
407 0.8725 1.2425 s ax dh 2222
2107 1.1025 1.2925 dh s ax 12
"""
DUMMY_WITHIN = """#file onset offset #phone prev-phone next-phone speaker
2107 0. 0.2 n p d 8193
2107 0.3225 0.5225 n ae d 8193
2107 0.6 0.75 n ae d 8193
2107 0.4225 0.5925 d n l 2222
42 0.4525 0.6525 d n l 2222
42 0.1301 0.2501 q n l 2222
42 0.5225 0.7325 d n l 8193
42 0.0025 0.3561 d p l 2222
42 0.5925 0.8725 d p l 8193
"""
DUMMY_FRAMES = {"2107": 20, "42": 10, "23": 22, "407": 15}  # test_data/<file>.npy hold arange(frames)


def test_dtw_reference_vectors():
    x = torch.tensor(REF_X, dtype=torch.float)
    y = torch.tensor(REF_Y, dtype=torch.float).expand(3, -1, -1)
    dist = frame_distances(x, y, "euclidean")
    got = dtw(dist, torch.tensor(REF_X_SIZE), torch.tensor([3, 3, 3]))
    expected = [math.sqrt(2) / 2, 3 / 4, (2 + math.sqrt(2)) / 3]
    assert got.tolist() == pytest.approx(expected, abs=1e-6)


def test_theta_reference_vectors():
    a = torch.tensor(REF_X, dtype=torch.float)
    b = torch.tensor(REF_Y, dtype=torch.float)
    sizes = REF_X_SIZE
    d_aa = torch.full((1, 3, 3), math.nan)
    d_ab = torch.empty(1, 3, 1)
    for i in range(3):
        for j in range(3):
            if i != j:
                d = frame_distances(a[i : i + 1, : sizes[i]], a[j : j + 1, : sizes[j]], "euclidean")
                d_aa[0, i, j] = dtw(d)[0]
        d_ab[0, i, 0] = dtw(frame_distances(a[i : i + 1, : sizes[i]], b, "euclidean"))[0]
    error = cell_errors(d_aa, d_ab, torch.tensor([3.0 * 2 * 1], dtype=torch.float64))
    assert error.item() == pytest.approx(0.5)  # the reference's theta = 0.5


def test_cosine_singularity_reference_vectors():
    x = torch.tensor([[[1., 0., 0., 0.], [0., 0., 0., 0.]], [[0., 0., -1., 0.], [0.5, -0.5, 0.5, -0.5]]])
    y = torch.tensor([[-0.5, -0.5, -0.5, 0.5], [0., 0., 0., 0.], [0., 1., 0., 0.]])
    norm_y = normalize_with_singularity(y)[None]
    got = torch.stack([frame_distances(normalize_with_singularity(x[i])[None], norm_y)[0] for i in range(2)])
    expected = [[[0.6667, 1, 0.5], [1, 0, 1]], [[0.3333, 1, 0.5], [0.6667, 1, 0.6667]]]
    assert got.tolist() == pytest.approx(np.array(expected), abs=1e-4)


def test_read_items_reference_files(tmp_path):
    path = tmp_path / "dummy.item"
    path.write_text(DUMMY_ITEMS)
    items = read_items(path)
    assert items.phones == ["n", "d", "ih", "s", "dh"]
    assert items.speakers == ["8193", "2222", "12"]
    assert items.contexts == ["ae+d", "n+l", "l+n", "ih+s", "n+ax", "ax+dh", "s+ax"]
    rows = [[f, a, b, c, p, s] for f, a, b, c, p, s in zip(items.files, items.onset, items.offset, items.context,
                                                           items.phone, items.speaker)]
    expected = {"2107": [[0.3225, 0.5225, 0, 0, 0], [0.4225, 0.5925, 1, 1, 1], [1.1025, 1.2925, 6, 4, 2]],
                "42": [[0.4525, 0.6525, 1, 1, 1], [0.5225, 0.7325, 2, 2, 0], [0.5925, 0.8725, 3, 0, 0]],
                "23": [[0.6525, 1.1025, 4, 3, 0], [0.7325, 1.1925, 4, 3, 1]],
                "407": [[0.8725, 1.2425, 5, 3, 1]]}
    assert {f: [r[1:] for r in rows if r[0] == f] for f in expected} == expected
    path.write_text(DUMMY_WITHIN)
    items = read_items(path)
    got = [[a, b, c, p, s] for f, a, b, c, p, s in zip(items.files, items.onset, items.offset, items.context,
                                                       items.phone, items.speaker) if f == "42"]
    assert got == [[0.4525, 0.6525, 2, 1, 1], [0.1301, 0.2501, 2, 2, 1], [0.5225, 0.7325, 2, 1, 0],
                   [0.0025, 0.3561, 3, 1, 1], [0.5925, 0.8725, 3, 1, 0]]


def test_frame_selection_reference_loader(tmp_path):
    path = tmp_path / "dummy.item"
    path.write_text(DUMMY_ITEMS)
    items = read_items(path)
    ids = {name: np.arange(frames) for name, frames in DUMMY_FRAMES.items()}  # unit ids keep frame numbers
    frames = load_frames(items, ids, feature_size=0.1, progress=False)
    assert len(frames.keep) == 9 and int(frames.length.sum()) == 16
    first = frames.data[frames.start[0] : frames.start[0] + frames.length[0]].tolist()
    assert first == [3]  # item 0: 2107 0.3225-0.5225 -> frame 3
    row = int(np.flatnonzero(items.files == "42")[0])  # the reference's item 3 (files read 2107, 42, ...)
    k = int(np.flatnonzero(frames.keep == row)[0])
    assert frames.data[frames.start[k] : frames.start[k] + frames.length[k]].tolist() == [5]


# ------------------------------------------------------------------------------------------ frames and DTW
def test_item_frames_edges():
    onset = np.array([0.0, 0.004, 0.005, 0.006, 0.015, 0.25, 0.97, 1.2])
    offset = np.array([0.03, 0.03, 0.016, 0.03, 0.025, 0.254, 1.5, 1.3])
    start, end = item_frames(onset, offset, frames=100)
    # start = max(0, ceil(t*100 - 0.5)), end = min(T, floor(t*100 - 0.5)) exclusive
    assert start.tolist() == [0, 0, 0, 1, 1, 25, 97, 120]
    assert end.tolist() == [2, 2, 1, 2, 2, 24, 100, 100]
    kept = (start < 100) & (end > start)
    assert kept.tolist() == [True, True, True, True, True, False, True, False]
    s, e = item_frames(np.array([0.1]), np.array([0.3]), frames=100, feature_size=0.02)
    assert (s.tolist(), e.tolist()) == ([5], [14])


def test_empty_and_out_of_range_items_are_dropped(small_set, tmp_path):
    features, path = small_set
    key = next(iter(features))
    frames = len(features[key])
    extra = read_items(path)
    lines = path.read_text().splitlines()
    lines += [f"{key} {frames * 0.01 + 0.5:.4f} {frames * 0.01 + 0.9:.4f} aa sil sil {extra.speakers[0]}",
              f"{key} 0.1000 0.1040 aa sil sil {extra.speakers[0]}"]
    padded = tmp_path / "padded.item"
    padded.write_text("\n".join(lines) + "\n")
    options = dict(context_mode="any", speaker_mode="within", progress=False)
    assert abx_errors(features, padded, **options) == abx_errors(features, path, **options)


def test_dtw_matches_loop_and_reference_cython():
    rng = np.random.default_rng(0)
    workspace = Workspace()
    for pairs, N, M, ties in ((40, 9, 7, True), (30, 5, 12, False), (25, 1, 6, True), (20, 6, 1, False)):
        d = rng.random((pairs, N, M)).astype(np.float32)
        if ties:
            d = (rng.integers(0, 3, (pairs, N, M)) * 0.5).astype(np.float32)
        n, m = rng.integers(1, N + 1, pairs), rng.integers(1, M + 1, pairs)
        order = np.argsort(n + m, kind="stable")  # sorted pairs retire early; unsorted must work too
        for perm in (order, rng.permutation(pairs)):
            got = dtw(torch.from_numpy(d[perm]), torch.from_numpy(n[perm]), torch.from_numpy(m[perm]), workspace)
            expected = [loop_dtw(d[p, : n[p], : m[p]]) for p in perm]
            assert np.array_equal(got.numpy(), np.array(expected, dtype=np.float32))
    try:
        import libri_light_dtw
    except ImportError:
        return
    d = (rng.integers(0, 4, (50, 8, 8)) * 0.25).astype(np.float32)
    got = dtw(torch.from_numpy(d)).numpy()
    assert np.array_equal(got, [np.float32(libri_light_dtw._dtw(8, 8, d[p], True)) for p in range(50)])


def test_within_group_dtw_takes_the_earlier_item_down(tmp_path):
    # DTW(a1, a2) = 0.25 but DTW(a2, a1) = 0.3 (the backtrack prefers left over up); d(a1, b) = d(a2, b) = 0.25.
    # The reference computes d(a_i, a_j) once with the earlier item down: error 50 % (100 % the other way).
    units = {"f": np.array([0, 1, 2, 0, 2, 0, 0, 2, 1, 0])}
    spans = [("a", 0, 4), ("a", 4, 8), ("b", 8, 10)]
    path = tmp_path / "orientation.item"
    path.write_text(ITEM_HEADER + "\n" + "".join(
        f"f {s / 100:.4f} {(e + 0.6) / 100:.4f} {p} x y spk\n" for p, s, e in spans))
    options = dict(speaker_mode="within", context_mode="within", progress=False)
    assert abx_errors(units, path, **options) == {"within-within": 50.0}
    one_hot = {"f": np.eye(3, dtype=np.float32)[units["f"]]}
    assert abx_errors(one_hot, path, **options) == {"within-within": 50.0}
    if reference_missing() is None:
        reference = reference_scores(one_hot, path, tmp_path, context_modes=("within",),
                                     speaker_modes=("within",))
        assert reference["within-within"] == 50.0


def test_other_frame_distances_follow_their_definitions():
    g = torch.Generator().manual_seed(1)
    x = normalize_with_singularity(torch.rand(7, 5, generator=g))[None]
    y = normalize_with_singularity(torch.rand(4, 5, generator=g))[None]
    a, b = x[0][:, None, :], y[0][None, :, :]
    eps = 1e-6
    kl = (a * ((a + eps) / (b + eps)).log()).sum(-1)
    back = (b * ((b + eps) / (a + eps)).log()).sum(-1)
    assert torch.allclose(frame_distances(x, y, "euclidean")[0], ((a - b) ** 2).sum(-1).sqrt(), atol=1e-6)
    assert torch.allclose(frame_distances(x, y, "kl")[0], kl, atol=1e-5)
    assert torch.allclose(frame_distances(x, y, "kl_symmetric")[0], 0.5 * kl + 0.5 * back, atol=1e-5)
    assert abx_errors({"f": torch.rand(30, 5)}, _one_file_items(), distance="kl", progress=False,
                      context_mode="any", speaker_mode="within")["within-any"] >= 0


def _one_file_items():
    """Six alternating a/b items of 5 frames in one file, one speaker, one context."""
    return ItemTable(np.array(["f"] * 6, dtype=object), np.array([0, .05, .1, .15, .2, .25]),
                         np.array([.05, .1, .15, .2, .25, .3]), np.array([0, 1, 0, 1, 0, 1]), np.zeros(6, int),
                         np.zeros(6, int), ["a", "b"], ["x+y"], ["s"])


# ------------------------------------------------------------------------------------------- item files
def test_write_items_phone_and_triphone(tmp_path):
    labels = {"u1": np.array([0, 0, 1, 1, 1, 2, 2, 0, 3, 3, 0]), "u2": np.array([2, 2, 1])}
    speakers = {"u1": "s1", "u2": "s2"}
    names = ["sil", "aa", "b", "k"]
    assert write_items(labels, speakers, tmp_path / "p.item", phones=names) == 5
    lines = (tmp_path / "p.item").read_text().splitlines()
    assert lines[0] == ITEM_HEADER
    assert lines[1:] == ["u1 0.0200 0.0500 aa sil b s1", "u1 0.0500 0.0700 b aa sil s1",
                         "u1 0.0800 0.1000 k sil sil s1", "u2 0.0000 0.0200 b sil aa s2",
                         "u2 0.0200 0.0300 aa b sil s2"]
    assert write_items(labels, speakers, tmp_path / "t.item", unit="triphone", phones=names) == 3
    assert (tmp_path / "t.item").read_text().splitlines()[1:] == [
        "u1 0.0000 0.0700 aa sil b s1", "u1 0.0200 0.0800 b aa sil s1", "u1 0.0700 0.1100 k sil sil s1"]
    items = read_items(tmp_path / "t.item")
    assert items.phones == ["aa", "b", "k"] and items.contexts == ["sil+b", "aa+sil", "sil+sil"]
    write_items({"u": [0, 5, 5, 0]}, {"u": "s"}, tmp_path / "ids.item")
    assert (tmp_path / "ids.item").read_text().splitlines()[1] == "u 0.0100 0.0300 5 0 0 s"
    with pytest.raises(KeyError, match="u2"):
        write_items(labels, {"u1": "s1"}, tmp_path / "x.item")
    with pytest.raises(ValueError, match="unit"):
        write_items(labels, speakers, tmp_path / "x.item", unit="word")


# ----------------------------------------------------------------------------- agreement with the reference
def test_agreement_with_reference_without_subsampling(small_set, tmp_path):
    features, path = small_set
    ours = abx_errors(features, path, max_size_group=1000, max_x_across=1000, progress=False)
    reference = reference_scores(features, path, tmp_path)
    assert list(ours) == KEYS
    for key in KEYS:
        assert ours[key] == pytest.approx(reference[key], abs=1e-4), key
    assert 0 < ours["within-any"] < ours["across-any"] < 50


def test_unit_features_one_hot_and_ids(test_utterances, phones, tmp_path):
    utterances = test_utterances[:4]
    path = item_file(utterances, tmp_path / "units.item", phones)
    projection = torch.randn(40, 16, generator=torch.Generator().manual_seed(0))
    ids = {k: (torch.from_numpy(f) @ projection).argmax(1).numpy() for k, f in logmel(utterances).items()}
    one_hot = {k: np.eye(16, dtype=np.float32)[v] for k, v in ids.items()}
    options = dict(max_size_group=1000, max_x_across=1000, progress=False)
    ours = abx_errors(one_hot, path, **options)
    assert abx_errors(ids, path, **options) == ours  # (frames,) unit ids: same numbers, no one-hot needed
    reference = reference_scores(one_hot, path, tmp_path)  # exact ties everywhere: tests the tie rules
    for key in KEYS:
        assert ours[key] == pytest.approx(reference[key], abs=1e-4), key


def test_agreement_with_reference_subsampled(phones, tmp_path):
    from cpc.data.labelled import load_utterances

    train = load_utterances(str(SAMPLE / "train"))
    speakers = sorted({u.speaker for u in train})[:2]
    utterances = [u for u in train if u.speaker in speakers]  # 8 each: (speaker, phone) groups exceed 10
    features, path = logmel(utterances), item_file(utterances, tmp_path / "train.item", phones)
    frames = load_frames(read_items(path), features, 0.01, False)
    table = read_items(path)
    g = group_items(np.zeros(len(frames.keep), int), table.speaker[frames.keep], table.phone[frames.keep])
    assert (g.size > 10).sum() >= 10  # subsampling really happens
    ours = abx_errors(features, path, context_mode="any", progress=False)
    reference = reference_scores(features, path, tmp_path, max_size_group=10, max_x_across=5,
                                 context_modes=("any",))
    for key in ("within-any", "across-any"):
        assert abs(ours[key] - reference[key]) < 0.3, (key, ours[key], reference[key])


# -------------------------------------------------------------------------- subsampling, sources, errors
def test_subsampling_is_deterministic_and_seeded(small_set):
    features, path = small_set
    options = dict(context_mode="any", max_size_group=2, max_x_across=1, progress=False)
    first = abx_errors(features, path, **options)
    assert abx_errors(features, path, **options) == first
    assert abx_errors(lambda name: features[name], path, **options) == first  # a callable source
    assert abx_errors(features, path, speaker_mode="across", **options) == {"across-any": first["across-any"]}
    other = abx_errors(features, path, seed=7, **options)
    assert other != first and all(abs(other[k] - first[k]) < 5 for k in first)


def test_groups_are_subsampled_uniformly():
    phone = np.array([0] * 25 + [1] * 4)
    g = group_items(np.zeros(29, int), np.zeros(29, int), phone)
    assert g.size.tolist() == [25, 4]
    cells = np.array([0] * 4000 + [1] * 3)
    drawn = draw_items(g, cells, 10, np.random.default_rng(0))
    big, small = drawn[:4000], drawn[4000:]
    assert drawn.shape == (4003, 10) and (small[:, 4:] == -1).all() and (small[:, :4] == [25, 26, 27, 28]).all()
    assert all(len(set(row)) == 10 and set(row) <= set(range(25)) for row in big[:50].tolist())
    counts = np.bincount(big.ravel(), minlength=25)
    assert counts.min() > 0.85 * 1600 and counts.max() < 1.15 * 1600  # each item in 10/25 of the draws
    assert len({tuple(row) for row in big.tolist()}) > 3900
    assert np.array_equal(draw_items(g, cells, 10, np.random.default_rng(0)), drawn)


def test_feature_folder_and_shards(small_set, tmp_path):
    import webdataset as wds

    features, path = small_set
    folder = tmp_path / "npy"
    (folder / "sub").mkdir(parents=True)
    for name, array in features.items():
        np.save(folder / "sub" / f"{name}.npy", array)
    loaded, first = load_feature_folder(folder), next(iter(features))
    assert set(loaded) == set(features) and np.array_equal(loaded[first], features[first])
    shards = tmp_path / "shards"
    shards.mkdir()
    with wds.TarWriter(str(shards / "shard-000000.tar")) as sink:
        for name, array in features.items():
            buffer = io.BytesIO()
            np.save(buffer, array.astype(np.float16))
            sink.write({"__key__": name, "c.npy": buffer.getvalue(),
                        "json": json.dumps({"frames": len(array), "layer": "c"}).encode()})
    (shards / "index.json").write_text(json.dumps({"format": "cpc-shards/1", "shards": [{"url": "shard-000000.tar"}]}))
    from_shards = load_feature_shards(shards)
    assert set(from_shards) == set(features) and from_shards[first].dtype == np.float16
    two = list(features)[:2]
    assert set(load_feature_shards(str(shards / "shard-000000.tar"), keys=two)) == set(two)
    options = dict(context_mode="any", speaker_mode="within", progress=False)
    assert abx_errors(loaded, path, **options) == abx_errors(features, path, **options)
    half = {k: v.astype(np.float16) for k, v in features.items()}
    assert abx_errors(from_shards, path, **options) == abx_errors(half, path, **options)


def test_clear_errors(small_set, tmp_path):
    features, path = small_set
    partial = dict(list(features.items())[:2])
    with pytest.raises(KeyError, match=r"4 of the 6 files .* first: "):
        abx_errors(partial, path, progress=False)
    with pytest.raises(KeyError, match="4 of the 6 files"):
        abx_errors(lambda name: partial[name], path, progress=False)
    bad = tmp_path / "bad.item"
    bad.write_text(ITEM_HEADER + "\nf 0.1 0.2 aa sil b s\nf 0.1 aa sil b s\n")
    with pytest.raises(ValueError, match=r"bad.item line 3: expected 7 columns"):
        read_items(bad)
    bad.write_text(ITEM_HEADER + "\nf 0.1 x aa sil b s\n")
    with pytest.raises(ValueError, match=r"line 2: offset 'x' is not a number"):
        read_items(bad)
    bad.write_text("f 0.1 0.2 aa sil b s\n")
    with pytest.raises(ValueError, match="line 1: expected the header"):
        read_items(bad)
    with pytest.raises(FileNotFoundError, match="nowhere.item"):
        read_items(tmp_path / "nowhere.item")
    with pytest.raises(FileNotFoundError, match="no .npy files"):
        load_feature_folder(tmp_path)
    with pytest.raises(ValueError, match="shape"):
        abx_errors({k: v[None] for k, v in features.items()}, path, progress=False)
    with pytest.raises(ValueError, match="dim 3"):
        abx_errors({k: (v if i else v[:, :3]) for i, (k, v) in enumerate(features.items())}, path, progress=False)
    for bad_option in (dict(distance="manhattan"), dict(speaker_mode="between"), dict(max_size_group=1),
                       dict(feature_size=0)):
        with pytest.raises(ValueError):
            abx_errors(features, path, progress=False, **bad_option)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(small_set):
    features, path = small_set
    cpu = abx_errors(features, path, device="cpu", progress=False)
    cuda = abx_errors(features, path, device="cuda", progress=False)
    for key in KEYS:
        assert cuda[key] == pytest.approx(cpu[key], abs=1e-3), key
