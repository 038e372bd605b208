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


SAMPLE = __import__("pathlib").Path(__file__).resolve().parents[2] / "datasets" / "synthetic_speech" / "sample"


def keys_of(batches, count):
    import itertools

    return [tuple(b["key"]) for b in itertools.islice(iter(batches), count)]


def sample_stream(train, start=0, segment=0, window=3200):
    from cpc.data.audio import AudioDataConfig, audio_stream

    config = AudioDataConfig(shards=str(SAMPLE / ("train" if train else "test")), batch_size=4, window=window,
                             shuffle_samples=10, shuffle_windows=50)
    return audio_stream(config, train=train, sample_rate=16000, hop=160, start=start, segment=segment)


def test_reader_threads_give_the_batches_worker_processes_give_in_their_order():
    """Threads stand in for DataLoader worker processes: the same batches in the same order, for a training stream
    started mid-segment (a resumed run) and for an evaluation stream whose slots run out unevenly."""
    from cpc.data.stages import loader

    for train, count in ((True, 10), (False, 1000)):
        stream = sample_stream(train, start=3 if train else 0, segment=4 if train else 0)
        processes = keys_of(loader(stream, num_workers=2), count)
        threads = keys_of(loader(stream, num_workers=2, kind="threads"), count)
        assert threads == processes and len(set(threads)) == len(threads)
    in_process = keys_of(stream, count)
    assert sorted(k for b in threads for k in b) == sorted(k for b in in_process for k in b)  # every window once


def test_a_closed_reader_threads_iterator_leaves_no_reader_thread_behind():
    """A thread still reading when the next DataLoader forks its workers hung that fork now and then (futex)."""
    import threading

    from cpc.data.stages import loader

    batches = iter(loader(sample_stream(True), num_workers=2, kind="threads"))
    next(batches)
    batches.close()
    assert [t.name for t in threading.enumerate() if t.name.startswith("cpc-reader-")] == []


def test_a_reader_threads_error_reaches_the_training_loop():
    import pytest

    from cpc.data.stages import NoBatches, loader

    stream = sample_stream(True, window=16000 * 60)  # no utterance holds a minute: no batch is ever made
    stream.patience = 50
    with pytest.raises(NoBatches, match="without one batch of 4 windows of 960000 samples"):
        next(iter(loader(stream, num_workers=2, kind="threads")))


def test_each_reader_thread_counts_its_own_samples_without_a_batch():
    """Reader threads iterate one Stream object; the 'no batch yet' watchdog belongs to each thread's pipeline: a
    thread that never completes a batch stops after `patience` samples of its own, however many batches the other
    thread makes meanwhile (a shared counter was reset by the other's batches and grown by its samples)."""
    import threading
    import time
    from collections import Counter

    import pytest

    from cpc.data.stages import NoBatches, ThreadedBatches

    stream = sample_stream(True)
    stream.patience = 200
    decode, decoded = stream.decode, Counter()

    def starving_reader_one(sample, skips):
        reader = threading.current_thread().name
        decoded[reader] += 1
        if reader == "cpc-reader-1":
            time.sleep(0.001)  # reader 0 goes on making batches while reader 1 reads
            return None
        return decode(sample, skips)

    stream.decode = starving_reader_one
    batches = iter(ThreadedBatches(stream, workers=2, prefetch=500))
    next(batches)  # reader 0's
    with pytest.raises(NoBatches, match="^200 samples read from .* without one batch of 4 windows"):
        next(batches)  # reader 1's
    assert decoded["cpc-reader-1"] == 200 and decoded["cpc-reader-0"] > 0
