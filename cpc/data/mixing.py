"""Weighted mixtures of shard sets: several corpora (e.g. synthetic English and real recorded speech) streamed
together so that each supplies a chosen fraction of the training audio. The mixture is drawn at the shard level:
each shard is picked with probability weight(corpus) / seconds(corpus), so a corpus's expected share of the audio
time is its weight whatever its size or shard count (seconds from each set's index.json; without one, every
shard counts as equally long). Small shards make the realised mix follow the weights closely.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from cpc.data.shards import INDEX_NAME, resolve_shards


def parse_mix(entries: list[str]) -> list[tuple[str, float]]:
    """["SPEC=WEIGHT", ...] (a shard spec as resolve_shards takes it, then its weight) -> [(spec, weight)]."""
    mix = []
    for entry in entries:
        spec, sep, weight = entry.rpartition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not spec or not value > 0:
            raise ValueError(f"a mixture entry is SHARDS=WEIGHT with a weight > 0; got {entry!r}")
        mix.append((spec, value))
    if not mix:
        raise ValueError("an empty mixture: give at least one SHARDS=WEIGHT")
    return mix


def shard_seconds(spec: str, urls: list[str] | None = None) -> dict[str, float] | None:
    """{shard url: seconds} from the index.json of a local shard set (a folder or the index itself); None when
    the spec has no index to read (a brace pattern, a URL list). `urls`: the spec's shards, if already resolved."""
    path = Path(spec)
    if path.is_dir():
        path = path / INDEX_NAME
    if not (path.name.endswith(".json") and path.is_file()):
        return None
    index = json.loads(path.read_text())
    urls = urls if urls is not None else resolve_shards(str(path))
    return {url: float(entry.get("seconds", 0.0)) for url, entry in zip(urls, index["shards"])}


@dataclass(frozen=True)
class Mixture:
    """A mixture with every corpus's shards and durations read once: what a run's training stream draws from."""

    urls: list[str]  # every corpus's shards, in mixture order
    probabilities: list[float]  # each shard's draw probability
    sources: dict[str, str]  # {shard url: the mixture entry's shard spec}
    shares: list[float]  # each corpus's expected share of the audio time


def resolve_mixture(mix: list[tuple[str, float]]) -> Mixture:
    """Each corpus resolved once (a missing path fails, naming it); every shard of corpus i is drawn with
    probability proportional to weight_i / seconds(corpus i), so it supplies weight_i / sum(weights) of the audio
    time in expectation (shards without durations count as equally long)."""
    urls, scores, sources, seconds_of = [], [], {}, []
    total = sum(weight for _, weight in mix)
    for spec, weight in mix:
        shards = resolve_shards(spec)
        seconds = shard_seconds(spec, shards)
        if seconds is None or sum(seconds.values()) <= 0:
            seconds = {url: 1.0 for url in shards}  # no durations: shards count as equally long
        corpus_seconds = sum(seconds[url] for url in shards)
        for url in shards:
            urls.append(url)
            scores.append(weight / total / corpus_seconds)
            sources[url] = spec
        seconds_of.append((shards, seconds))
    norm = sum(scores)
    probabilities = [s / norm for s in scores]
    by_url = dict(zip(urls, probabilities))
    shares = [sum(by_url[url] * seconds[url] for url in shards) for shards, seconds in seconds_of]
    return Mixture(urls, probabilities, sources, [share / sum(shares) for share in shares])


def mixture_shards(mix: list[tuple[str, float]]) -> tuple[list[str], list[float]]:
    """(shard urls, draw probabilities) of `resolve_mixture`."""
    mixture = resolve_mixture(mix)
    return mixture.urls, mixture.probabilities


def shard_sources(mix: list[tuple[str, float]]) -> dict[str, str]:
    """{shard url: the mixture entry's shard spec}: which corpus each shard belongs to (batches by source)."""
    return resolve_mixture(mix).sources


def expected_shares(mix: list[tuple[str, float]]) -> list[float]:
    """Each corpus's expected share of the audio time under the mixture's draw (equals the normalised weights
    whenever the indexes give durations)."""
    return resolve_mixture(mix).shares


def weighted_shard_urls(urls: list[str], probabilities: list[float], rng: random.Random) -> Iterator[str]:
    """Training's endless shard draw, weighted (stages.shard_urls draws uniformly); the same rng gives the same
    sequence, so a stream restarted from its start position reproduces itself."""
    while True:
        yield rng.choices(urls, weights=probabilities)[0]
