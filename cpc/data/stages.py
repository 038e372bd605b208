"""Pipeline stages shared by the audio, video and image streams: shard source and rank/worker split, sample
expansion with skip counting, shuffling, fixed-length windows, batching. Each stage is a small generator
function over an iterator, so a user can rearrange them.

Randomness is explicit and tied to batch positions, not to processes. A training stream is cut into segments of
`segment` batches (the trainer's checkpoint interval); within a segment, DataLoader worker w makes every
num_workers-th batch, and the batches of one such slot come from one pipeline whose `random.Random` is seeded
from (seed, rank, segment start, slot). So a stream started at any batch index (a resumed run) makes exactly the
batches the uninterrupted stream made there, with persistent workers that are never restarted, and no two
workers or ranks share draws.
"""

from __future__ import annotations

import itertools
import queue
import threading
import os
import random
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import webdataset as wds
from torch.nn.utils.rnn import pad_sequence

from cpc.config import ConfigError, Rules
from cpc.data.mixing import parse_mix, resolve_mixture, weighted_shard_urls
from cpc.data.shards import resolve_shards
from cpc.errors import UserError


@dataclass
class StreamConfig:
    """What every stream's data section shares."""

    # index.json, a folder with one, a brace pattern or URL, or a list of URLs; in code also a ShardSource, the
    # shards a run resolved once (`source`), which streams then read as they are
    shards: str | list[str] = ""
    batch_size: int = 8
    num_workers: int | None = None  # DataLoader workers per rank; None: 0 on CPU, from the CPU count on CUDA
    workers: str = "processes"  # "processes" (DataLoader workers) or "threads" (no hand-off cost; see loader())
    prefetch: int = 2  # batches each worker keeps ready
    open_shards: int = 4  # training reads this many shards at once, interleaved (mixes speakers within batches)
    seed: int = 0

    # Training from a weighted mixture of corpora instead of `shards`: ["SHARDS=WEIGHT", ...], each corpus supplying
    # its weight's share of the audio time (cpc.data.mixing); evaluation streams read `shards`.
    mix: list[str] = field(default_factory=list)

    def check(self, rules: Rules) -> None:
        """A ConfigError for the first setting of this data section (`rules`, e.g. data) that cannot work."""
        rules.at_least(1, "batch_size", "prefetch", "open_shards")
        rules.at_least(0, "num_workers")
        rules.one_of("workers", WORKER_KINDS)

    def source(self, train: bool) -> ShardSource:
        """The shards a stream reads, resolved (a missing path fails here, naming it): training draws from the
        mixture when `mix` is given, evaluation reads `shards`."""
        if train and self.mix:
            try:
                entries = parse_mix(self.mix)
            except ValueError as error:
                raise ConfigError(f"data.mix: {error}") from None
            mixture = resolve_mixture(entries)
            return ShardSource(mixture.urls, mixture.probabilities, mixture.sources,
                               [(spec, share) for (spec, _), share in zip(entries, mixture.shares)])
        return ShardSource(resolve_shards(self.shards))

    def stream_args(self, train: bool, start: int, segment: int) -> dict[str, Any]:
        """The Stream arguments these settings fix; a training stream starts at StreamPosition(start, segment)."""
        source = self.shards if isinstance(self.shards, ShardSource) else self.source(train)
        return dict(urls=source.urls, weights=source.weights, sources=source.sources, batch_size=self.batch_size,
                    train=train, open_shards=self.open_shards, seed=self.seed,
                    position=StreamPosition(start, segment))


@dataclass(frozen=True)
class ShardSource:
    """A stream's shards, resolved once per run: urls, and for a training mixture each shard's draw probability,
    its corpus and each corpus's expected share of the audio time."""

    urls: list[str]
    weights: list[float] | None = None
    sources: dict[str, str] | None = None
    shares: list[tuple[str, float]] | None = None  # (corpus spec, share) in mixture order


@dataclass(frozen=True)
class StreamPosition:
    """Where a training stream stands: `batch`, the global index of its next batch, and `segment`, the batches
    per randomness segment (0: one endless segment). A stream started at a position makes exactly the batches
    the uninterrupted stream made there; a checkpoint records the position its run resumes from."""

    batch: int = 0
    segment: int = 0

    def advanced(self, batches: int) -> StreamPosition:
        return StreamPosition(self.batch + batches, self.segment)

    def pipeline(self, workers: int) -> tuple[int, int, int]:
        """(segment start, slot, batches of that slot made before this one) of the pipeline that makes batch
        `batch`, when `workers` readers each make every workers-th batch of a segment."""
        segment_start = self.batch - self.batch % self.segment if self.segment else 0
        slot = (self.batch - segment_start) % workers
        return segment_start, slot, (self.batch - segment_start - slot) // workers


def reader_place() -> tuple[int, int, int, int]:
    """(rank, world_size, worker, num_workers) of the calling process: torch.distributed when initialised,
    else the RANK / WORLD_SIZE variables torchrun sets, else a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    info = torch.utils.data.get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else getattr(_thread_slot, "value", (0, 1))
    return rank, world, worker, workers


_thread_slot = threading.local()  # (worker, workers) of a ThreadedBatches reader thread


def pipeline_rng(seed: int, segment_start: int, slot: int) -> random.Random:
    rank, _, _, workers = reader_place()
    return random.Random(f"{seed}/{rank}/{segment_start}/{slot}/{workers}")  # str seeds hash alike in every process


def find_field(sample: dict[str, Any], fields: tuple[str, ...], skips: SkipCounter, missing: str) -> str | None:
    """The first of `fields` (file extensions) the sample carries; None, counted as skipped for `missing`, if none."""
    field = next((f for f in fields if f in sample), None)
    if field is None:
        skips.skip(missing, sample["__key__"])
    return field


class SkipCounter:
    """Counts skipped samples by reason, keeping the first few keys. Lives in the worker; `drain()` hands the
    counts since the last drain to the batch, so they reach the main process through the data itself."""

    def __init__(self, keep: int = 5):
        self.keep = keep
        self.counts: Counter = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def skip(self, reason: str, key: str) -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < self.keep and key not in self.examples[reason]:
            self.examples[reason].append(key)

    def handler(self, error: Exception) -> bool:
        """A webdataset error handler: count the error and continue."""
        where = next((str(a) for a in reversed(error.args) if isinstance(a, str) and ("/" in a or ":" in a)), "?")
        self.skip(f"unreadable shard data ({type(error).__name__})", where)
        return True

    def drain(self) -> dict[str, tuple[int, list[str]]]:
        drained = {reason: (n, list(self.examples[reason])) for reason, n in self.counts.items()}
        self.counts.clear()
        self.examples.clear()
        return drained

    def merge(self, drained: dict[str, tuple[int, list[str]]]) -> None:
        for reason, (n, keys) in drained.items():
            self.counts[reason] += n
            new = [key for key in dict.fromkeys(keys) if key not in self.examples[reason]]  # an endless stream
            self.examples[reason].extend(new[: self.keep - len(self.examples[reason])])  # meets a bad one often

    def report(self) -> str:
        if not self.counts:
            return "no samples skipped"
        return "; ".join(
            f"{n} {reason} (e.g. {', '.join(self.examples[reason])})" for reason, n in self.counts.most_common()
        )


def shard_urls(urls: list[str], train: bool, rng: random.Random) -> Iterator[str]:
    """Training: an endless random draw of shards (every rank and worker streams forever, so step counts match
    on every rank whatever the shard sizes). Evaluation: each shard exactly once across ranks and workers."""
    rank, world, worker, workers = reader_place()
    if train:
        while True:
            yield rng.choice(urls)
    else:
        yield from urls[rank::world][worker::workers]


def raw_samples(urls: Iterable[str], skips: SkipCounter) -> Iterator[dict[str, Any]]:
    """Tar bytes -> samples {"__key__", "__url__", extension: bytes}; unreadable shards are counted, not fatal."""
    return wds.tarfile_samples(({"url": url} for url in urls), handler=skips.handler)


def interleaved_samples(urls: Iterator[str], open_shards: int, rng: random.Random,
                        skips: SkipCounter) -> Iterator[dict[str, Any]]:
    """Samples of `open_shards` shards read at once, each next sample from a randomly chosen open shard (a new
    shard opens as one ends): shards written speaker by speaker still mix in every batch."""
    readers = [raw_samples([url], skips) for url in itertools.islice(urls, open_shards)]
    while readers:
        pick = rng.randrange(len(readers))
        sample = next(readers[pick], None)
        if sample is not None:
            yield sample
            continue
        following = next(urls, None)
        if following is None:
            readers.pop(pick)
        else:
            readers[pick] = raw_samples([following], skips)


def shuffled(items: Iterable[Any], rng: random.Random, buffer: int) -> Iterator[Any]:
    """Buffer shuffle (webdataset's) driven by our worker RNG; buffer <= 1 passes items through."""
    if buffer <= 1:
        return iter(items)
    return wds.shuffle(buffer, initial=buffer, rng=rng)(items)


def cut_windows(
    items: Iterable[dict[str, Any]],
    field: str,
    length: int,
    quantum: int,
    rng: random.Random | None,
    skips: SkipCounter,
    label_step: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every non-overlapping window of `length` along axis 0 of item[field], from one offset per item (random
    multiple of `quantum` when rng is given, else 0). `labels`, one per `label_step` steps (default: quantum),
    are cut to the same span."""
    label_step = label_step or quantum
    for item in items:
        data = item[field]
        count = len(data) // length
        if count == 0:
            skips.skip("shorter than one window", item["key"])
            continue
        slack = (len(data) - count * length) // quantum
        offset = rng.randint(0, slack) * quantum if rng is not None else 0
        for i in range(count):
            start = offset + i * length
            window = dict(item, key=f"{item['key']}@{start}", start=start)
            window[field] = data[start : start + length]
            if item.get("labels") is not None:
                window["labels"] = item["labels"][start // label_step : (start + length) // label_step]
            yield window


SILENCE_WINDOWS = 64  # training windows looked at before judging whether a corpus is mostly digital silence


class SilentCorpus(RuntimeWarning):
    """Most training windows are all zeros: a model trains at chance on them."""


def silence_watch(items: Iterable[dict[str, Any]], field: str, after: int = SILENCE_WINDOWS,
                  share: float = 0.5) -> Iterator[dict[str, Any]]:
    """`items` unchanged; once `after` of them went by, a SilentCorpus warning if more than `share` of those were
    all zeros in item[field] (digital silence: nothing to predict, so a model trains at chance without a word)."""
    silent: list[str] = []
    for seen, item in enumerate(items, start=1):
        if seen <= after:
            if not np.any(item[field]):
                silent.append(item["key"])
            if seen == after and len(silent) > share * after:
                warnings.warn(f"{len(silent)} of the first {after} training windows ({len(silent) / after:.0%}) are "
                              f"digital silence (every sample 0), e.g. {', '.join(silent[:3])}: a model cannot learn "
                              "from them; `cpc shards` names the silent recordings of a corpus", SilentCorpus)
        yield item


def grouped(items: Iterable[dict[str, Any]], group: str, size: int, skips: SkipCounter, max_open: int = 256):
    """Lists of `size` items that share item[group] (e.g. one speaker). At most `max_open` groups are buffered;
    beyond that the oldest incomplete group is dropped and counted, so memory stays bounded."""
    open_groups: dict[Any, list] = {}
    for item in items:
        members = open_groups.setdefault(item[group], [])
        members.append(item)
        if len(members) == size:
            yield open_groups.pop(item[group])
        elif len(open_groups) > max_open:
            oldest = next(iter(open_groups))
            for dropped in open_groups.pop(oldest):
                skips.skip(f"incomplete {group} group", dropped["key"])


def collate(items: list[dict[str, Any]], field: str, target_field: str | None = None) -> dict[str, Any]:
    """Stack item[field] into one tensor, and item[target_field] (the other version augmentation makes) when the
    items carry it; speakers become batch-local ids (equal id = same speaker); frame labels stack into (batch,
    frames) when every item has them; unequal lengths are padded (see "lengths")."""
    names = [item.get("speaker", "") for item in items]
    ids = {name: i for i, name in enumerate(dict.fromkeys(names))}
    arrays = [torch.from_numpy(item[field]) for item in items]
    batch = {
        field: pad_sequence(arrays, batch_first=True),
        "lengths": torch.tensor([len(a) for a in arrays]),
        "speaker": torch.tensor([ids[name] for name in names]),
        "speaker_name": names,
        "key": [item["key"] for item in items],
    }
    if target_field is not None and target_field in items[0]:  # what the targets are encoded from (cpc.data.augment)
        batch[target_field] = pad_sequence([torch.from_numpy(item[target_field]) for item in items], batch_first=True)
    if all(item.get("labels") is not None for item in items):
        labels = [torch.from_numpy(item["labels"].astype(np.int64)) for item in items]
        batch["labels"] = pad_sequence(labels, batch_first=True, padding_value=-1)
    if all(item.get("targets") for item in items):  # clip- or utterance-level class ids, e.g. {"digit": 3}
        batch["targets"] = {name: torch.tensor([item["targets"][name] for item in items]) for name in items[0]["targets"]}
    return batch


# Batch composition: None (any windows), or every batch from one speaker, one sequence or one source (a mixture's
# corpus, data.mix).
GROUPS = (None, "speaker", "sequence", "source")


class NoBatches(UserError):
    """A training stream that reads sample after sample and never completes a batch."""


class BatchWatch:
    """The 'no batch yet' watchdog of one pipeline: counts the samples read since the pipeline last completed a
    batch and raises NoBatches past `patience`. One per pipeline, never on the Stream: reader threads iterate the
    same Stream object, and a shared count would be grown by one thread's samples and reset by another's batches."""

    def __init__(self, stream: Stream, skips: SkipCounter):
        self.stream, self.skips, self.fruitless = stream, skips, 0

    def samples(self, samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """`samples`, raising NoBatches once `patience` of them in a row went by without a batch."""
        stream = self.stream
        for sample in samples:
            self.fruitless += 1
            if self.fruitless > stream.patience:
                urls = stream.urls
                shown = ", ".join(urls[:3]) + (f" and {len(urls) - 3} more" if len(urls) > 3 else "")
                unit = "samples" if stream.field == "wav" else stream.field
                window = f"windows of {stream.window} {unit}" if stream.window else "batches"
                raise NoBatches(f"{self.fruitless - 1} samples read from {shown} without one batch of "
                                f"{stream.batch_size} {window}; skipped: {self.skips.report()}")
            yield sample

    def batch_made(self) -> None:
        self.fruitless = 0


class Stream(torch.utils.data.IterableDataset):
    """shards -> split -> [mix open shards] -> shuffle compressed samples -> decode -> [windows] -> shuffle or
    group -> batch.

    `decode(raw_sample, skips) -> item | None` turns one sample's bytes into {"key", field, "speaker", ...};
    `target_field` names the windows' second version, when a `transform` (augmentation) adds one.
    Training streams are endless and start at `position`; evaluation streams read every sample once."""

    def __init__(
        self,
        urls: list[str],
        decode: Callable[[dict[str, Any], SkipCounter], dict[str, Any] | None],
        field: str,
        batch_size: int,
        train: bool,
        window: int | None = None,
        quantum: int = 1,
        label_step: int | None = None,
        group: str | None = None,
        shuffle_samples: int = 100,
        shuffle_items: int = 1000,
        open_shards: int = 1,
        seed: int = 0,
        position: StreamPosition = StreamPosition(),
        weights: list[float] | None = None,
        sources: dict[str, str] | None = None,
        transform: Callable[[Iterator[dict[str, Any]], random.Random], Iterator[dict[str, Any]]] | None = None,
        target_field: str | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if group not in GROUPS:
            raise ValueError(f"unknown batch grouping {group!r}; choose one of {GROUPS}")
        self.urls, self.decode, self.field, self.target_field = urls, decode, field, target_field
        self.batch_size, self.train, self.window, self.group = batch_size, train, window, group
        self.quantum, self.label_step = quantum, label_step
        self.shuffle_samples, self.shuffle_items, self.open_shards = shuffle_samples, shuffle_items, open_shards
        self.seed, self.position = seed, position
        # Training only: shard draw probabilities (a weighted mixture of corpora, cpc.data.mixing), and a stage on
        # the windows (augmentation) drawing from the pipeline's rng, so a resumed stream repeats it exactly.
        self.weights, self.transform = weights, transform
        # {shard url: corpus}, a mixture's: each item is tagged with its "source", which `group: source` batches by.
        self.sources = sources
        # A training stream that reads this many samples without completing a batch stops with an error instead
        # of spinning forever (every utterance shorter than a window, every sample corrupt).
        self.patience = 4 * (shuffle_samples + shuffle_items + 256 * batch_size) + 1000

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.train:
            yield from self.batches(random.Random(self.seed))
            return
        _, _, worker, workers = reader_place()
        # State of this iteration lives here, not on the Stream, which reader threads share.
        here = self.position.advanced(worker)  # this reader's next batch
        check_silence = True  # once per reader: not at every segment
        while True:
            segment_start, slot, done = here.pipeline(workers)
            pipeline = self.batches(pipeline_rng(self.seed, segment_start, slot), check_silence)
            check_silence = False
            for number, batch in enumerate(pipeline):
                if number < done:
                    continue  # fast-forward to a mid-segment start: remake and drop
                yield batch
                here = here.advanced(workers)
                if here.segment and here.batch >= segment_start + here.segment:
                    break

    def batches(self, rng: random.Random, check_silence: bool = False) -> Iterator[dict[str, Any]]:
        """One pipeline's batches, its random draws from `rng`; `check_silence`: warn if the first training
        windows are mostly digital silence."""
        skips = SkipCounter()
        watch = BatchWatch(self, skips)  # this pipeline's own: see BatchWatch
        train = self.train
        urls = weighted_shard_urls(self.urls, self.weights, rng) if train and self.weights else shard_urls(
            self.urls, train, rng)
        samples = interleaved_samples(urls, self.open_shards, rng, skips) if train else raw_samples(urls, skips)
        if train:
            samples = watch.samples(shuffled(samples, rng, self.shuffle_samples))
        items = (item for item in (self.decoded(s, skips) for s in samples) if item is not None)
        if self.window is not None:
            items = cut_windows(items, self.field, self.window, self.quantum, rng if train else None, skips,
                                self.label_step)
            if train and check_silence:
                items = silence_watch(items, self.field)
        if train and self.transform is not None:
            items = self.transform(items, rng)
        if self.group is not None:
            key = {"speaker": "speaker", "sequence": "utterance", "source": "source"}[self.group]
            batches = grouped(items, key, self.batch_size, skips)
            if train:
                batches = shuffled(batches, rng, max(1, self.shuffle_items // self.batch_size))
        else:
            if train:
                items = shuffled(items, rng, self.shuffle_items)
            batches = wds.batched(self.batch_size, collation_fn=None)(items)
        # One batch is held back so the skips met while forming the next one (or at the end of the stream)
        # still ride along: batch["skipped"] = {reason: (count, first keys)}.
        held = None
        for members in batches:
            watch.batch_made()
            batch = collate(members, self.field, self.target_field)
            if held is not None:
                held["skipped"] = skips.drain()
                yield held
            held = batch
        if held is not None:
            held["skipped"] = skips.drain()
            yield held

    def decoded(self, sample: dict[str, Any], skips: SkipCounter) -> dict[str, Any] | None:
        """`decode`, plus the item's "source" (its corpus in a mixture; "" otherwise)."""
        item = self.decode(sample, skips)
        if item is not None:
            item["source"] = self.sources.get(sample.get("__url__", ""), "") if self.sources else ""
        return item


WORKER_KINDS = ("processes", "threads")


def loader(stream: Stream, num_workers: int = 0, pin_memory: bool = False, prefetch: int = 2,
           kind: str = "processes"):
    """Batches of a Stream (it makes them itself), loading overlapped with compute by `num_workers` workers:
    DataLoader worker processes (persistent: the next validation reuses them), or reader threads
    (ThreadedBatches), which give the same batches in the same order."""
    if kind not in WORKER_KINDS:
        raise UserError(f"unknown data.workers {kind!r}; choose one of {WORKER_KINDS}")
    if kind == "threads" and num_workers > 0:
        return ThreadedBatches(stream, num_workers, prefetch, pin_memory)
    return torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
        # Its own generator: starting an iterator draws a base seed, which from the global RNG would shift the
        # training's random draws (negatives) by whether the loader was created before or after a resume.
        generator=torch.Generator().manual_seed(0),
    )


JOIN_SECONDS = 30.0  # a reader finishes the batch it is making before it sees the stop; longer means it hangs


class ThreadedBatches:
    """A Stream read by `workers` threads, each making the batches DataLoader worker process w would make (every
    workers-th batch), handed over in the same order: the same batches as with worker processes, so exact resume
    holds whichever kind a run uses. A batch moves to the training loop by reference: no pickling, no shared-memory
    file descriptors (which cost DataLoader workers about half the reader's CPU here, see docs/performance.md).
    Decoding (libsndfile) runs without the GIL, so threads overlap it with the step and with each other; the
    Python parts of the reader (tar parsing, windowing, batching) do hold it."""

    def __init__(self, stream: Stream, workers: int, prefetch: int = 2, pin_memory: bool = False):
        self.stream, self.workers, self.prefetch, self.pin_memory = stream, workers, prefetch, pin_memory

    def __iter__(self) -> Iterator[dict[str, Any]]:
        queues = [queue.Queue(self.prefetch) for _ in range(self.workers)]
        stop = threading.Event()
        threads = [threading.Thread(target=self.read, args=(w, queues[w], stop), daemon=True,
                                    name=f"cpc-reader-{w}") for w in range(self.workers)]
        for thread in threads:
            thread.start()
        live = list(range(self.workers))
        try:
            while live:
                for w in list(live):
                    item = queues[w].get()
                    if item is _END:
                        live.remove(w)  # an evaluation stream's slot ran out; the others go on
                        continue
                    if isinstance(item, BaseException):
                        raise item
                    yield pinned(item) if self.pin_memory else item
        finally:
            stop.set()
            # Ended, not just told to end: a thread still mid-read could hold a lock (malloc's, a file's) that a
            # process forked next (DataLoader workers) would inherit held and wait on forever.
            for thread in threads:
                thread.join(timeout=JOIN_SECONDS)

    def read(self, worker: int, out: queue.Queue, stop: threading.Event) -> None:
        _thread_slot.value = (worker, self.workers)
        try:
            for batch in self.stream:
                while not stop.is_set():
                    try:
                        out.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            out.put(_END)
        except BaseException as error:  # raised in the training loop, which reads this queue
            out.put(error)


_END = object()


def pinned(batch: dict[str, Any]) -> dict[str, Any]:
    """Tensors in page-locked memory, so the copy to the GPU runs asynchronously."""
    return {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
