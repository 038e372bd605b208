"""LibriSpeech (or Libri-light, or any SPEAKER/CHAPTER/UTT.flac tree) -> FLAC shards with speaker ids, plus the
CPC phone alignments as frame labels when given.

    # the CPC phone-probe protocol on train-clean-100 (alignments and split lists from the CPC_audio release):
    python datasets/librispeech/make_shards.py LibriSpeech/train-clean-100 data/ls100 \\
        --alignments converted_aligned_phones.txt --split train=train_split.txt --split test=test_split.txt
    # unlabelled pretraining audio, 500 MB shards:
    python datasets/librispeech/make_shards.py LibriSpeech/train-clean-360 data/ls360

Utterance ids (e.g. 103-1240-0000) are the sample keys, speaker = the top folder (103). Split files list one
utterance id per line; without --split everything goes into one shard set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
from cpc.data.labels import read_splits  # noqa: E402
from cpc.data.ingest import AudioItem, items_from_folder  # noqa: E402
from cpc.data.labels import read_alignments, safe_key  # noqa: E402
from cpc.data.shards import write_splits  # noqa: E402

SAMPLE_RATE = 16000  # LibriSpeech and Libri-light are 16 kHz


def librispeech_items(root: str | Path) -> list[AudioItem]:
    """Every utterance under root, keyed by its LibriSpeech id, speaker = SPEAKER folder."""
    items = items_from_folder(root, speaker_level=2)
    for item in items:
        item.key = safe_key(Path(item.path).stem)
        item.fields = {"chapter": Path(item.path).parent.name}
    return items


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="a LibriSpeech subset folder, e.g. LibriSpeech/train-clean-100")
    parser.add_argument("out")
    parser.add_argument("--alignments", help="converted_aligned_phones.txt (one label per 10 ms frame)")
    parser.add_argument("--split", action="append", default=[], metavar="NAME=FILE",
                        help="utterance-id list for a split; repeat for several")
    parser.add_argument("--shard-mb", type=float, default=500)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    items = librispeech_items(args.root)
    alignments = read_alignments(args.alignments) if args.alignments else None
    splits = read_splits(args.split) if args.split else None
    for name, keys in (splits or {}).items():
        unknown = keys - {item.key for item in items}
        if unknown:
            print(f"{name}: {len(unknown)} listed utterances are not under {args.root} (e.g. {sorted(unknown)[0]})")
    write_splits(items, args.out, splits, alignments, max_bytes=args.shard_mb * 1e6, max_seconds=args.max_seconds,
                 sample_rate=SAMPLE_RATE)


if __name__ == "__main__":
    main()
