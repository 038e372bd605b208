import random
from collections import Counter
from itertools import islice

import numpy as np
import pytest
import soundfile as sf

from cpc.data.ingest import AudioItem
from cpc.data.mixing import expected_shares, mixture_shards, parse_mix, weighted_shard_urls
from cpc.data.shards import audio_samples, write_shards


def corpus(folder, name, seconds, per_shard):
    """A shard set of 1 s utterances, `per_shard` to a shard, with its index."""
    items = []
    for i in range(seconds):
        path = folder / "wav" / name / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros(16000, np.float32), 16000)
        items.append(AudioItem(str(path), name, f"{name}_{i}"))
    write_shards(audio_samples(items, 16000), str(folder / name / "s-%04d.tar"), max_count=per_shard, progress=False)
    return str(folder / name)


def test_parse_mix():
    assert parse_mix(["data/a=0.7", "pipe:cat x=y.tar=0.3"]) == [("data/a", 0.7), ("pipe:cat x=y.tar", 0.3)]
    for bad in (["data/a"], ["data/a=0"], ["data/a=heavy"], ["=1"], []):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_each_corpus_supplies_its_weight_of_the_audio_time(tmp_path):
    # a big corpus of few long shards and a small one of many short shards, mixed 1:3
    big, small = corpus(tmp_path, "big", 40, 10), corpus(tmp_path, "small", 6, 1)
    mix = [(big, 1.0), (small, 3.0)]
    urls, probabilities = mixture_shards(mix)
    assert len(urls) == 4 + 6 and sum(probabilities) == pytest.approx(1.0)
    assert probabilities[-1] / probabilities[0] == pytest.approx((3 / 6) / (1 / 40))  # weight / corpus seconds
    assert expected_shares(mix) == pytest.approx([0.25, 0.75])
    seconds = {u: (10.0 if "/big/" in u else 1.0) for u in urls}
    draws = list(islice(weighted_shard_urls(urls, probabilities, random.Random(0)), 20000))
    audio = Counter()
    for url in draws:
        audio["big" if "/big/" in url else "small"] += seconds[url]
    assert audio["small"] / sum(audio.values()) == pytest.approx(0.75, abs=0.02)


def test_the_draw_is_reproducible_from_the_same_rng(tmp_path):
    urls, probabilities = mixture_shards([(corpus(tmp_path, "a", 4, 1), 1.0), (corpus(tmp_path, "b", 4, 2), 1.0)])
    first = list(islice(weighted_shard_urls(urls, probabilities, random.Random("0/0/0/5")), 50))
    again = list(islice(weighted_shard_urls(urls, probabilities, random.Random("0/0/0/5")), 50))
    assert first == again and len(set(first)) > 1


def test_shard_sets_without_an_index_count_shards_as_equal(tmp_path):
    folder = corpus(tmp_path, "c", 4, 2)
    pattern = f"{folder}/s-{{0000..0001}}.tar"
    urls, probabilities = mixture_shards([(pattern, 1.0), (corpus(tmp_path, "d", 2, 1), 1.0)])
    assert probabilities == pytest.approx([0.25, 0.25, 0.25, 0.25])
    with pytest.raises(FileNotFoundError):
        mixture_shards([(str(tmp_path / "missing"), 1.0)])


def test_shard_sources_name_each_shards_corpus(tmp_path):
    from cpc.data.mixing import shard_sources

    a, b = corpus(tmp_path, "a", 4, 2), corpus(tmp_path, "b", 2, 1)
    sources = shard_sources([(a, 1.0), (b, 2.0)])
    assert sorted(sources.values()) == [a, a, b, b] and all(f"/{name}/" in url for url, name in
                                                           ((u, "a" if s == a else "b") for u, s in sources.items()))
