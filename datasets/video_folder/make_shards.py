"""A folder of videos (anything PyAV decodes: avi, mp4, mkv, ...) or of frame-image folders -> uint8 frame-array
shards for CPC on video (`cpc.data.video.video_stream`).

    pip install 'cpc[video]'     # PyAV
    python datasets/video_folder/make_shards.py /data/UCF-101 data/ucf101 --size 64 --fps 12.5 \
        --clip-frames 32 --class-level 1 --split test=testlist01.txt

Each video becomes one clip, or clips of --clip-frames frames; frames are scaled so the shorter side is --size and
centre-cropped to a square (--grey for one channel). With --class-level 1 the folder holding a video names its
class (UCF-101, HMDB-51, Kinetics layouts), stored as the clip target "class" (ids in sorted name order).
--split NAME=FILE puts the videos listed in FILE (paths relative to the input folder, as in UCF-101's split
lists; a class index column is ignored) into split NAME; the rest go to "train".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
from cpc.data.labels import safe_key  # noqa: E402
from cpc.data.ingest import folder_clips, source_key, video_sources  # noqa: E402
from cpc.data.shards import clip_samples, write_shards  # noqa: E402


def split_lists(specs: list[str]) -> dict[str, str]:
    """["test=testlist01.txt"] -> {video key: split name}."""
    split_of = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"--split takes NAME=FILE with an existing list file; got {spec!r}")
        for line in Path(path).read_text().split("\n"):
            if line.strip():
                split_of[safe_key(str(Path(line.split()[0]).with_suffix("")))] = name
    return split_of


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="folder of videos and/or of frame-image folders (searched recursively)")
    parser.add_argument("out", help="output folder: one shard set per split")
    parser.add_argument("--size", type=int, default=64, help="square frame side after scaling and centre crop")
    parser.add_argument("--fps", type=float, default=None, help="resample every video to this frame rate")
    parser.add_argument("--clip-frames", type=int, default=0, help="cut videos into clips of this many frames")
    parser.add_argument("--grey", action="store_true", help="one grey channel instead of RGB")
    parser.add_argument("--class-level", type=int, default=0, help="folder levels above a video naming its class")
    parser.add_argument("--split", action="append", default=[], metavar="NAME=FILE")
    parser.add_argument("--shard-mb", type=float, default=500.0)
    args = parser.parse_args(argv)
    split_of = split_lists(args.split)
    sources = video_sources(args.source)
    splits: dict[str, list[Path]] = {}
    for source in sources:
        splits.setdefault(split_of.get(source_key(args.source, source), "train"), []).append(source)
    for split, members in sorted(splits.items()):
        skipped: list[str] = []
        clips = folder_clips(args.source, members, args.size, args.fps, args.clip_frames, args.grey,
                             args.class_level, skipped)
        index = write_shards(clip_samples(clips), str(Path(args.out) / split / "shard-%06d.tar"),
                             max_bytes=args.shard_mb * 1e6)
        print(f"{split}: {index['samples']} clips from {len(members) - len(skipped)} videos, "
              f"{index['seconds'] / 3600:.2f} h in {len(index['shards'])} shard(s)")
        for problem in skipped:
            print(f"  skipped: {problem}")


if __name__ == "__main__":
    main()
