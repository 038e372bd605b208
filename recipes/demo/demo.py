"""The end-to-end demo (`make demo`): pretrain a small CPC on the bundled phone-aligned synthetic speech for a few
minutes of CPU, then run the same phone and speaker probes on its features, on the shipped checkpoint's (made by
recipes/demo/cpc_shipped.yaml, about an hour of CPU), on MFCC and log-mel, and on randomly initialised encoders of
both architectures, and their ABX within-speaker error on the test split (what `cpc abx` computes); print one table.

    python recipes/demo/demo.py              # what `make demo` runs
    python recipes/demo/demo.py --steps 0    # probes only, for the shipped checkpoint and the baselines
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from cpc.data.labelled import load_utterances  # noqa: E402
from cpc.eval.abx.items import items_from_alignments  # noqa: E402
from cpc.eval.abx.score import abx_errors  # noqa: E402
from cpc.eval.featurize import featurizer  # noqa: E402
from cpc.eval.plots import plot_confusion  # noqa: E402
from cpc.eval.probes import ProbeConfig, class_probe, frame_probe  # noqa: E402
from cpc.eval.sources import ExtractedFeatures  # noqa: E402
from cpc.checkpoint import load as load_model  # noqa: E402
from cpc.recipe import load_config, pretrain  # noqa: E402

SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample"
SHIPPED = ROOT / "recipes" / "demo" / "cpc_shipped.pt"
# Real recorded English (Debian's en-US voice prompts, evaluation only): `python datasets/recorded_prompts/
# make_shards.py --out data/prompts` builds it where the voice-prompt packages install (datasets/recorded_prompts).
ENGLISH = ROOT / "data" / "prompts" / "english"


def abx_items(speakers: str | Path, out: Path) -> Path:
    """Phone items of the sample's utterances that `speakers` names (shards, or `utterance speaker` lines): what
    `cpc abx items ALIGNMENTS SPEAKERS OUT --phones phones.txt` writes."""
    items_from_alignments(SAMPLE / "converted_aligned_phones.txt", str(speakers), out, "phone", SAMPLE / "phones.txt")
    return out


def abx_within(features, utterances, items: Path, **options) -> float:
    """ABX error (%) within speaker, any context, of a featurizer's frames of `utterances` on `items`: what `cpc abx
    --model SPEC --audio SHARDS ITEMS --speaker-mode within --context-mode any` computes. (Any context: the test
    split has two sentences per voice, too few same-context pairs for the within-context score.) `options`: more
    abx_errors arguments (max_size_group, seed, ...)."""
    audio = {u.key: u.wav for u in utterances}
    scores = abx_errors(ExtractedFeatures(features, audio), items, features.frame_seconds or 0.01,
                        speaker_mode="within", context_mode="any", progress=False, **options)
    return scores["within-any"]


def shipped_rows() -> list[tuple[str, str, str]]:
    """(name, featurizer spec, layer) of the shipped checkpoint: its context c, and both directions' context
    (c_bidir, offline) when it was trained with a reverse g_ar."""
    rows = [("CPC 128-ch, shipped checkpoint", str(SHIPPED), "c")]
    if load_model(SHIPPED).config.bidirectional:
        rows.append(("CPC 128-ch, shipped, c_bidir", str(SHIPPED), "c_bidir"))
    return rows


def english_phones(dev: Path, test: Path, specs: list[tuple[str, str, str]]) -> list[tuple[str, float]]:
    """(name, phone accuracy %) per (name, featurizer spec, layer) on real English: a linear probe with +-1 frame
    of context trained on `dev`, scored on `test`, what `cpc probe phones --train DEV --test TEST --context 1
    --layer LAYER` computes."""
    train, held_out = load_utterances(dev), load_utterances(test)
    return [(name, 100 * frame_probe(train, held_out, featurizer(spec, layer), 40, ProbeConfig(context=1)).accuracy)
            for name, spec, layer in specs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="pretraining steps for the demo model (0: skip)")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--no-english", action="store_true", help="skip the real-English rows (a few minutes)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.steps:
        config = load_config(ROOT / "recipes" / "demo" / "cpc.yaml",
                             [f"train.steps={args.steps}", f"train.out={out / 'cpc'}",
                              f"data.shards={SAMPLE / 'train'}", f"val_shards={SAMPLE / 'test'}"])
        print(f"1. pretraining the small CPC for {args.steps} steps on {SAMPLE / 'train'}")
        pretrain(config, overwrite=True)  # the demo's own folder: every `make demo` starts it afresh
        rows.append((f"CPC small, {args.steps} steps (this run)", str(out / "cpc"), "c"))
    if SHIPPED.exists():
        rows += shipped_rows()
        rows.append(("random init, shipped architecture", f"random:{SHIPPED}", "c"))
    rows += [("random init, small architecture", "random:small", "c"), ("MFCC (39)", "mfcc", "c"),
             ("log-mel (80)", "logmel", "c")]
    print("2. probes on held-out sentences (train split for the probe, its tenth for choosing the epoch)")
    train, test = load_utterances(SAMPLE / "train"), load_utterances(SAMPLE / "test")
    items = abx_items(SAMPLE / "test", out / "test_phone.item")
    phones = ProbeConfig(context=1, epochs=30)
    speakers = ProbeConfig(epochs=200, batch_size=16, lr=1e-2)
    table, results = [], {}
    for name, spec, layer in rows:
        features = featurizer(spec, layer)
        phone = frame_probe(train, test, features, 40, phones)
        speaker = class_probe(train, test, features, lambda u: u.speaker, speakers)
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        plot_confusion(phone.confusion, out / f"confusion_{slug}.png", f"phones: {name}")
        abx = abx_within(features, test, items)
        results[name] = {"phone_accuracy": phone.accuracy, "speaker_accuracy": speaker.accuracy, "abx_within": abx}
        table.append(f"| {name:<38} | {100 * phone.accuracy:5.1f} | {100 * speaker.accuracy:5.1f} | {abx:5.2f} |")
        print(f"   {name}: phones {100 * phone.accuracy:.1f} %, speakers {100 * speaker.accuracy:.1f} %, "
              f"ABX {abx:.2f} %", flush=True)  # progress; the table comes once, at the end
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print("\n| features (CPC: context c unless named) | phone % | speaker % | ABX within % |\n|---|---|---|---|")
    print("\n".join(table))
    print(f"\nlinear probes, phones with +-1 frame of context, 40 classes (chance 2.5 %), 11 speakers (chance 9.1 %);"
          "\nABX error %: phone items of the test split, within speaker, any context (chance 50, lower is better);"
          f"\nconfusion matrices: {out}/confusion_*.png; numbers: {out}/results.json")
    if args.no_english:
        return
    if not (ENGLISH / "dev").is_dir() or not SHIPPED.exists():
        print(f"\nreal recorded English: not built here ({ENGLISH}); build it with `python "
              "datasets/recorded_prompts/make_shards.py --out data/prompts`, then run this again")
        return
    print("\n3. real recorded English (the en-US voice prompts: probe trained on dev, scored on test)", flush=True)
    specs = shipped_rows() + [("MFCC (39)", "mfcc", "c"), ("log-mel (80)", "logmel", "c")]
    english = english_phones(ENGLISH / "dev", ENGLISH / "test", specs)
    print("\n| features (CPC: context c unless named) | English phone % |\n|---|---|")
    print("\n".join(f"| {name:<38} | {accuracy:5.1f} |" for name, accuracy in english))


if __name__ == "__main__":
    main()
