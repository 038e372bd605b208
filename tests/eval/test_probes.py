import pytest
import torch

from cpc.data.labelled import Utterance
from cpc.eval.probes import ProbeConfig, frame_dataset, frame_probe, pooled, train_probe, with_context


def synthetic_split(informative: bool, utterances: int = 30, classes: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features, labels = [], []
    for _ in range(utterances):
        y = torch.randint(0, classes, (50,), generator=g)
        noise = torch.randn(50, 8, generator=g)
        x = noise + 4 * torch.nn.functional.one_hot(y, 8).float() if informative else noise
        features.append(x)
        labels.append(y)
    return frame_dataset(features, labels)


@pytest.mark.parametrize("hidden", [0, 16])
def test_features_that_encode_the_label_score_near_100_and_noise_scores_chance(hidden):
    config = ProbeConfig(hidden=hidden, epochs=10, batch_size=64, lr=1e-2)
    good = train_probe(*(synthetic_split(True, seed=s) for s in (0, 1, 2)), classes=5, config=config)
    assert good.accuracy > 0.97 and good.confusion.sum() == 1500
    noise = train_probe(*(synthetic_split(False, seed=s) for s in (0, 1, 2)), classes=5, config=config)
    assert 0.1 < noise.accuracy < 0.3  # chance is 0.2


def test_epoch_is_chosen_on_dev_not_test():
    train, dev = synthetic_split(True, seed=0), synthetic_split(True, seed=1)
    test_x, test_y = synthetic_split(True, seed=2)
    shuffled = (test_x, test_y[torch.randperm(len(test_y))])  # a test set no epoch can do well on
    result = train_probe(train, dev, shuffled, classes=5, config=ProbeConfig(epochs=5, batch_size=64, lr=1e-2))
    assert result.dev_accuracy > 0.95 and result.accuracy < 0.4


def test_context_stacks_neighbours_with_repeated_edges():
    x = torch.arange(4.0)[:, None]
    assert with_context(x, 1).tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def test_label_mismatch_and_padding():
    with pytest.raises(ValueError, match="utterance 0: 10 feature frames but 13 labels"):
        frame_dataset([torch.zeros(10, 2)], [torch.zeros(13)])
    x, y = frame_dataset([torch.zeros(4, 2)], [torch.tensor([1, -1, 2, 3, 0])])  # one label extra, one padding
    assert y.tolist() == [1, 2, 3] and x.shape == (3, 2)


def test_context_equals_stacking_shifted_copies():
    x = torch.randn(7, 3)
    padded = torch.cat([x[:1].expand(2, -1), x, x[-1:].expand(2, -1)])
    stacked = torch.cat([padded[i : i + 7] for i in range(5)], dim=1)
    assert torch.equal(with_context(x, 2), stacked)


def test_pooled_is_the_mean_of_each_utterance():
    assert pooled([torch.ones(3, 2), torch.zeros(5, 2)]).tolist() == [[1, 1], [0, 0]]


def test_bad_utterances_are_reported_and_the_rest_still_count():
    g = torch.Generator().manual_seed(0)
    labels = {f"u{i}": torch.randint(0, 3, (40,), generator=g) for i in range(12)}
    labels["zshort"] = torch.randint(0, 3, (45,), generator=g)  # 5 more labels than frames: beyond tolerance
    utterances = {key: Utterance(key, torch.full((40 * 160,), float(i)), y, "s", 16000) for i, (key, y) in enumerate(labels.items())}
    utterances["nolabels"] = Utterance("nolabels", torch.full((40 * 160,), 99.0), None, "s", 16000)
    by_value = {float(i): y for i, y in enumerate(labels.values())}
    # features that encode each frame's label: the probe should be near perfect on the good utterances
    features = lambda wav: torch.nn.functional.one_hot(by_value.get(float(wav[0]), torch.zeros(40, dtype=torch.long))[:40], 3).float()
    train = [utterances[k] for k in ("u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "zshort", "nolabels")]
    test = [utterances[k] for k in ("u8", "u9", "u10", "u11")]
    result = frame_probe(train, test, features, 3, ProbeConfig(epochs=20, batch_size=16, lr=1e-2))
    assert result.accuracy > 0.95
    assert any(p.startswith("zshort: 40 feature frames but 45 labels") for p in result.problems), result.problems
    assert any(p.startswith("nolabels: no frame labels") for p in result.problems)


def test_coverage_counts_what_the_index_promised_against_what_was_scored():
    from cpc.data.labelled import Labelled
    from cpc.data.stages import SkipCounter
    from cpc.eval.probes import coverage, describe

    read = SkipCounter()
    read.skip("unreadable audio or metadata", "u7")
    read.skip("unreadable shard data (ReadError)", "shards/s-1.tar")
    items = Labelled([object()] * 6, read, expected=10)  # 6 read, 1 skipped, 3 lost with the broken shard
    probe = SkipCounter()
    probe.skip("no frame labels (no alignment)", "u2")
    covered = coverage(items, scored=5, left_out=probe)
    assert covered == {"total": 10, "scored": 5, "left_out": {
        "unreadable audio or metadata": {"count": 1, "examples": ["u7"]},
        "no frame labels (no alignment)": {"count": 1, "examples": ["u2"]},
        "in the index but never read (unreadable shard data (ReadError))": {"count": 3, "examples": ["shards/s-1.tar"]}}}
    assert describe(covered, "test") == (
        "test: scored 5 of 10 utterances; left out 5: 3 in the index but never read (unreadable shard data "
        "(ReadError)) (e.g. shards/s-1.tar); 1 unreadable audio or metadata (e.g. u7); 1 no frame labels (no "
        "alignment) (e.g. u2)")
