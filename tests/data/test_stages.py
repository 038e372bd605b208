import random

import numpy as np
import torch

from cpc.data.stages import SkipCounter, collate, cut_windows, grouped


def item(key, length, speaker="s", labels=None):
    return {"key": key, "wav": np.arange(length, dtype=np.float32), "speaker": speaker, "labels": labels}


def test_collate_pads_audio_with_zeros_labels_with_minus_one_and_keeps_lengths():
    items = [item("a", 5, "x", np.array([1, 2], np.int16)), item("b", 3, "y", np.array([3], np.int16)),
             item("c", 4, "x", np.array([4, 5], np.int16))]
    batch = collate(items, "wav")
    assert batch["wav"].tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 0, 0], [0, 1, 2, 3, 0]]
    assert batch["lengths"].tolist() == [5, 3, 4] and batch["key"] == ["a", "b", "c"]
    assert batch["labels"].tolist() == [[1, 2], [3, -1], [4, 5]] and batch["labels"].dtype == torch.int64
    assert batch["speaker"].tolist() == [0, 1, 0] and batch["speaker_name"] == ["x", "y", "x"]


def test_windows_cut_labels_on_their_own_grid():
    labels = np.arange(20, dtype=np.int16)  # one per 10 samples
    windows = list(cut_windows([item("u", 200, labels=labels)], "wav", 60, 20, None, SkipCounter(), label_step=10))
    assert [w["start"] for w in windows] == [0, 60, 120]
    assert windows[1]["wav"][0] == 60 and windows[1]["labels"].tolist() == [6, 7, 8, 9, 10, 11]
    offsets = {next(cut_windows([item("u", 230)], "wav", 60, 20, random.Random(s), SkipCounter()))["start"]
               for s in range(40)}
    assert offsets == {0, 20, 40}  # 3 windows leave 50 samples of slack, used in steps of the quantum


def test_short_items_and_incomplete_groups_are_counted():
    skips = SkipCounter(keep=1)
    assert list(cut_windows([item("short", 5), item("tiny", 3)], "wav", 10, 1, None, skips)) == []
    items = [item(f"u{i}", 4, speaker=f"s{i % 3}") for i in range(7)]
    groups = list(grouped(items, "speaker", 2, skips, max_open=1))
    assert all(len({m["speaker"] for m in g}) == 1 for g in groups)
    assert skips.counts["shorter than one window"] == 2 and skips.examples["shorter than one window"] == ["short"]
    assert skips.counts["incomplete speaker group"] > 0


def test_skip_counts_drain_merge_and_report():
    worker, main = SkipCounter(), SkipCounter()
    worker.skip("unreadable audio", "k1")
    worker.skip("unreadable audio", "k2")
    main.merge(worker.drain())
    assert not worker.counts and main.report() == "2 unreadable audio (e.g. k1, k2)"
