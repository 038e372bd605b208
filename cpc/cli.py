"""The `cpc` command. Thin: every subcommand parses its arguments and calls the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def shards(args: argparse.Namespace) -> None:
    """Audio folder or TSV manifest -> FLAC shards (+ labels, + index.json), one shard set per split."""
    from cpc.data.ingest import corpus_items
    from cpc.data.labels import read_alignments, read_splits
    from cpc.data.shards import write_splits

    items = corpus_items(args.source, args.speaker_level)
    splits = read_splits(args.split) if args.split else None
    alignments = read_alignments(args.alignments) if args.alignments else None
    write_splits(items, args.out, splits, alignments, args.shard_mb * 1e6, args.max_seconds,
                 sample_rate=args.sample_rate)


def pretrain(args: argparse.Namespace) -> None:
    """Train from a YAML recipe with --set overrides; --resume continues from the newest checkpoint."""
    from cpc.recipe import load_config, pretrain as run

    config = load_config(args.recipe, args.set)
    last = run(config, resume=args.resume, overwrite=args.overwrite)
    print(f"done: {config.train.out} (checkpoints, log.csv, curves.png); last logs: "
          + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k in ("loss", "accuracy", "lr")))


def extract(args: argparse.Namespace) -> None:
    """Checkpoint + shards or an audio folder -> per-utterance frame features as .npy files or a shard column.
    Unreadable files are skipped and reported; an output folder holding files is refused unless --overwrite."""
    import json

    import numpy as np
    from tqdm import tqdm

    from cpc.checkpoint import load
    from cpc.data.ingest import items_from_folder
    from cpc.data.labelled import load_utterances
    from cpc.data.shards import npy_bytes, resolve_shards, write_shards
    from cpc.data.stages import SkipCounter
    from cpc.devices import pick_device
    from cpc.eval.features import extract_corpus, output_folder, read_files

    out = Path(args.out)
    earlier = output_folder(out, args.overwrite)
    model = load(args.checkpoint)
    if not args.int8:  # int8 kernels are CPU kernels
        model.to(pick_device(args.device))
    rate = model.config.sample_rate
    source = Path(args.input)
    skips = SkipCounter()

    def progress(inputs):  # the bar counts skipped files too; it starts once the settings have been checked
        yield from tqdm(inputs, desc="extracting", unit="file", dynamic_ncols=True)

    def from_shards():
        loaded = load_utterances(args.input, rate)
        skips.merge(loaded.skips.drain())
        yield from ((u.key, u.wav) for u in progress(loaded))

    if source.is_dir() and not (source / "index.json").exists():
        utterances = read_files(progress(items_from_folder(source)), rate, skips)
    else:
        resolve_shards(args.input)  # a wrong path fails now, before any work
        utterances = from_shards()
    features = extract_corpus(model, utterances, args.layer, args.batch, round(args.chunk_seconds * rate),
                              args.precision, args.int8, skips)
    for path in earlier:  # --overwrite: the earlier extraction's files go once this one is ready to write
        path.unlink()
    dtype = {"float16": np.float16, "float32": np.float32}[args.dtype]
    features = ((key, f.cpu().numpy().astype(dtype)) for key, f in features)
    if args.format == "npy":
        out.mkdir(parents=True, exist_ok=True)
        count = 0
        for key, array in features:
            np.save(out / f"{key}.npy", array)
            count += 1
        print(f"wrote {count} arrays (frames x dim, {args.dtype}) to {out}")
    else:
        frame_rate = rate / model.hop
        samples = ({"__key__": key, f"{args.layer}.npy": npy_bytes(array),
                    "json": json.dumps({"frames": len(array), "dim": array.shape[1], "layer": args.layer,
                                        "frame_rate": frame_rate, "seconds": len(array) / frame_rate}).encode()}
                   for key, array in features)
        index = write_shards(samples, str(out / "shard-%06d.tar"), progress=False)
        print(f"wrote {index['samples']} feature arrays in {len(index['shards'])} shard(s) to {out}")
    if skips.counts:
        print(f"skipped: {skips.report()}")


def probe(args: argparse.Namespace) -> None:
    """Phone (frame) or speaker probes, or video-clip probes (each clip target from pooled features, per-frame
    labels frame by frame), for each --features with the same probe and split; a table, JSON, PNGs."""
    import json

    from cpc.checkpoint import CheckpointError
    from cpc.data.labelled import load_clips, load_utterances
    from cpc.errors import UserError
    from cpc.eval.featurize import feature_name, featurizer
    from cpc.eval.plots import plot_confusion
    from cpc.eval.probes import ProbeConfig, class_probe, coverage, describe, frame_probe, require_items

    load = load_clips if args.task == "clips" else load_utterances
    train, test = load(args.train), load(args.test)
    require_items(train, f"--train {args.train}")
    require_items(test, f"--test {args.test}")
    noun = "clips" if args.task == "clips" else "utterances"
    rate = getattr(train[0], "sample_rate", None)
    out = Path(args.out)
    config = ProbeConfig(hidden=args.hidden, context=args.context, epochs=args.epochs, lr=args.lr,
                         batch_size=args.batch_size)
    tasks = {"phones": {"phones": lambda f: frame_probe(train, test, f, args.classes, config)},
             "speakers": {"speakers": lambda f: class_probe(train, test, f, lambda u: u.speaker, config)}}
    if args.task == "clips":
        tasks["clips"] = {name: (lambda f, name=name: class_probe(train, test, f, lambda c: c.targets[name], config))
                          for name in (args.target or sorted(train[0].targets))}
        if train[0].labels is not None:
            tasks["clips"]["frame labels"] = lambda f: frame_probe(train, test, f, args.classes, config)
    results = {}
    for spec in args.features:
        try:  # int8 scales come from the first training utterances (int8_model reads a minute at most), never test
            features = featurizer(spec, args.layer, [u.inputs for u in train], sample_rate=rate, device=args.device)
        except (ValueError, RuntimeError, CheckpointError) as error:
            raise UserError(f"{error} (--features {spec})") from None
        name = feature_name(spec)
        for task, run in tasks[args.task].items():
            result = run(features)
            slug = task.replace(" ", "_")
            out.mkdir(parents=True, exist_ok=True)  # once there is something to write: a refused probe leaves none
            plot_confusion(result.confusion, out / f"confusion_{slug}_{name}.png", f"{task}: {spec}")
            covered = {split: coverage(items, result.scored[split], result.left_out[split])
                       for split, items in (("test", test), ("train", train))}
            results.setdefault(spec, {})[task] = {
                "accuracy": result.accuracy, "dev_accuracy": result.dev_accuracy, "best_epoch": result.best_epoch,
                "per_class": result.per_class, "left_out": result.problems, "coverage": covered}
            print(f"{spec:<40} {task:<12} test accuracy {result.accuracy:.3f}  (dev {result.dev_accuracy:.3f}, "
                  f"epoch {result.best_epoch})", flush=True)
            for split, covers in covered.items():
                print(f"  {describe(covers, split, noun)}")
    if args.task != "clips":  # one task: keep the flat {spec: result} layout
        results = {spec: tasks_done[args.task] for spec, tasks_done in results.items()}
    (out / f"{args.task}.json").write_text(json.dumps({"config": vars(config), "results": results}, indent=1))
    print(f"wrote {out / (args.task + '.json')} and the confusion PNGs in {out}")


def main(argv: list[str] | None = None) -> None:
    """Runs one subcommand. A mistake the user can fix (cpc.errors.UserError, a missing file) prints one line,
    `cpc <command>: <message>`, and exits 2; Ctrl-C exits 130 with one line; --debug keeps the traceback."""
    from cpc.errors import Interrupted, UserError

    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (UserError, FileNotFoundError, Interrupted, KeyboardInterrupt) as error:
        if args.debug:
            raise
        message = str(error) if not isinstance(error, KeyboardInterrupt) else "interrupted (Ctrl-C)"
        print(f"cpc {args.command}: {message}", file=sys.stderr)
        raise SystemExit(130 if isinstance(error, (Interrupted, KeyboardInterrupt)) else 2) from None


def parser() -> argparse.ArgumentParser:
    from cpc.devices import DEVICES
    from cpc.models.cpc import CPCModelConfig

    parser = argparse.ArgumentParser(prog="cpc", description="Contrastive Predictive Coding on sequences")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subcommands = parser.add_subparsers(dest="command", required=True)

    class Commands:  # every subcommand shows its defaults in --help and takes --debug
        @staticmethod
        def add_parser(name, **kwargs):
            return subcommands.add_parser(name, parents=[common], **kwargs,
                                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    commands = Commands()
    p = commands.add_parser("shards", help="write WebDataset shards from an audio folder or a TSV manifest")
    p.add_argument("source", help="a folder of audio files, or a TSV manifest with path and speaker columns")
    p.add_argument("out", help="output folder; one sub-folder per --split")
    p.add_argument("--alignments", help="frame labels, converted_aligned_phones.txt format")
    p.add_argument("--split", action="append", default=[], metavar="NAME=FILE", help="key list of a split")
    p.add_argument("--speaker-level", type=int, default=1, help="folder levels above a file naming its speaker")
    p.add_argument("--max-seconds", type=float, default=30.0, help="longer recordings are cut into pieces")
    p.add_argument("--shard-mb", type=float, default=500.0, help="a new shard starts once one holds this many MB")
    p.add_argument("--sample-rate", type=int, default=CPCModelConfig.sample_rate,
                   help="recordings are resampled to this rate (the model's)")
    p.set_defaults(run=shards)

    p = commands.add_parser("pretrain", help="pretrain from a YAML recipe (same trainer for every method)")
    p.add_argument("recipe", help="YAML recipe, e.g. recipes/demo/cpc.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, dotted for nested keys: --set optim.lr=3e-4")
    p.add_argument("--resume", action="store_true", help="continue from the newest readable checkpoint in train.out")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in a train.out that holds a run (deletes its checkpoints and logs)")
    p.set_defaults(run=pretrain)

    p = commands.add_parser("extract", help="frame-level features (one vector per 10 ms) from a checkpoint")
    p.add_argument("checkpoint", help="a checkpoint file or run folder")
    p.add_argument("input", help="shards (index, folder with index.json, pattern) or a folder of audio files")
    p.add_argument("out", help="output folder, new or empty (see --overwrite): one KEY.npy per utterance, or shards")
    p.add_argument("--layer", default="c", choices=["z", "c", "both"],
                   help="z: encoder frames, c: context (g_ar) frames, both: the two concatenated")
    p.add_argument("--format", default="npy", choices=["npy", "shards"],
                   help="npy: one file per utterance; shards: one tar column, same keys and order as the input")
    p.add_argument("--dtype", default="float32", choices=["float16", "float32"], help="dtype of the stored arrays")
    p.add_argument("--batch", type=int, default=8, help="utterances per padded batch")
    p.add_argument("--chunk-seconds", type=float, default=0.0,
                   help="0: encode whole files; > 0: stream each file in chunks this long (bounded memory; at least "
                        "one frame's context, 0.03 s for the bundled models)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an OUT that holds files: an earlier extraction's .npy, shard-*.tar and index.json "
                        "there are deleted first, other files kept")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="float math: bf16 autocast is ~2x faster on CPUs with native bf16 (AVX-512 BF16, AMX)")
    p.add_argument("--int8", action="store_true",
                   help="run the encoder in int8 (BatchNorm or no-norm encoders, x86 CPU), calibrated on the first "
                        "utterances: fastest on CPU; see README 'int8 extraction' for what it changes")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto: CUDA when present")
    p.set_defaults(run=extract)

    p = commands.add_parser("probe", help="linear phone, speaker or video-clip probes on frozen features")
    p.add_argument("task", choices=["phones", "speakers", "clips"],
                   help="clips: each clip target (e.g. digit) from pooled features, per-frame labels by frame")
    p.add_argument("--train", required=True, help="labelled training shards")
    p.add_argument("--test", required=True, help="held-out shards, scored once")
    p.add_argument("--features", action="append", required=True,
                   help="a checkpoint (file or run folder), mfcc, logmel, random:PRESET or int8:CHECKPOINT; "
                        "repeat to compare")
    p.add_argument("--layer", default="c", choices=["z", "c", "both", "appearance"],
                   help="appearance: video frames' spatially pooled trunk maps")
    p.add_argument("--context", type=int, default=0, help="frames of context each side (phones)")
    p.add_argument("--hidden", type=int, default=0, help="one hidden layer of this width; 0: linear")
    p.add_argument("--classes", type=int, default=40, help="frame label classes (phones; clips' frame labels)")
    p.add_argument("--target", action="append", default=[], help="clips: a clip target to probe (default: all)")
    p.add_argument("--epochs", type=int, default=20, help="probe training epochs; the best on a dev tenth is kept")
    p.add_argument("--lr", type=float, default=1e-3, help="probe learning rate (Adam)")
    p.add_argument("--batch-size", type=int, default=512, help="frames (phones) or utterances per probe step")
    p.add_argument("--out", default="runs/probe", help="folder for the JSON results and confusion PNGs")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="where models compute features (auto: CUDA when present)")
    p.set_defaults(run=probe)
    return parser


if __name__ == "__main__":
    sys.exit(main())
