import itertools

import numpy as np
import torch

from cpc.data.video import VideoDataConfig, video_stream

from .conftest import load_script

digits = load_script("datasets/moving_digits/make_corpus.py")


def test_bouncing_keeps_the_digit_inside_and_labels_follow_the_motion():
    rng = np.random.default_rng(0)
    digit = np.full((6, 6), 200, np.uint8)
    video, directions = digits.moving_clip(digit, frames=40, canvas=16, speed=2, rng=rng)
    assert video.shape == (40, 16, 16, 1) and (video.sum(axis=(1, 2, 3)) == 200 * 36).all()  # never clipped
    for t in range(39):  # the digit's top-left corner moves by the labelled direction (or reflects at a wall)
        y0, x0 = np.argwhere(video[t, :, :, 0])[0]
        y1, x1 = np.argwhere(video[t + 1, :, :, 0])[0]
        dx, dy = digits.DIRECTIONS[directions[t + 1]]
        assert (x1 - x0, y1 - y0) == (2 * dx, 2 * dy)
    assert len(set(directions.tolist())) > 1  # it bounced at least once in 40 frames


def test_corpus_shards_read_back_as_windows(tmp_path):
    digits.main(["--out", str(tmp_path), "--clips", "8", "--frames", "12", "--source", "mnist"])
    config = VideoDataConfig(shards=str(tmp_path / "train"), batch_size=4, window=6, shuffle_samples=2, shuffle_windows=4)
    for batch in itertools.islice(video_stream(config, train=True), 3):
        assert batch["frames"].shape == (4, 6, 32, 32, 1) and batch["frames"].dtype == torch.uint8
        assert batch["labels"].shape == (4, 6)
        assert set(batch["targets"]) == {"digit", "direction"}
    test = list(video_stream(VideoDataConfig(shards=str(tmp_path / "test"), batch_size=1), train=False, windows=False))
    assert len(test) == 2 and test[0]["frames"].shape == (1, 12, 32, 32, 1)
    assert test[0]["labels"][0, 0] == test[0]["targets"]["direction"][0]
