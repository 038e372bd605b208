"""The `cpc` command. Thin: every subcommand parses its arguments and calls the library."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def shards(args: argparse.Namespace) -> None:
    """Audio folder or TSV manifest -> FLAC shards (+ labels, + index.json), one shard set per split."""
    from cpc.data.corpora import corpus_alignments, read_corpus
    from cpc.data.labels import read_alignments, read_splits
    from cpc.data.shards import write_splits

    items = read_corpus(args.source, args.speaker_level, args.audio_column, args.speaker_column)
    splits = read_splits(args.split) if args.split else None
    # --alignments, else those the source carries (Lhotse supervisions), whose label names go to OUT/phones.txt
    alignments, names = (read_alignments(args.alignments), []) if args.alignments else corpus_alignments(args.source)
    write_splits(items, args.out, splits, alignments, args.shard_mb * 1e6, args.max_seconds,
                 sample_rate=args.sample_rate)
    if names:
        (Path(args.out) / "phones.txt").write_text("".join(f"{name}\n" for name in names))
        print(f"frame labels from the manifest's phone alignments: {len(names)} classes, names by id in "
              f"{Path(args.out) / 'phones.txt'}")


def pretrain(args: argparse.Namespace) -> None:
    """Train from a YAML recipe with --set overrides; --resume continues from the newest checkpoint."""
    from cpc.recipe import load_config, pretrain as run

    config = load_config(args.recipe, args.set)
    last = run(config, resume=args.resume, overwrite=args.overwrite)
    if last and int(os.environ.get("RANK", 0)) == 0:  # under torchrun, once; none: a finished run, nothing done
        print(f"done: {config.train.out} (checkpoints, log.csv, curves.png); last logs: "
              + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k in ("loss", "accuracy", "lr")))


def extract(args: argparse.Namespace) -> None:
    """Checkpoint + shards or an audio folder -> per-utterance frame features as .npy files or a shard column.
    Unreadable files are skipped and reported; an output folder holding files is refused unless --overwrite."""
    from cpc.checkpoint import load
    from cpc.data.ingest import is_audio_file, items_from_path
    from cpc.data.labelled import load_utterances
    from cpc.data.shards import resolve_shards
    from cpc.data.stages import SkipCounter
    from cpc.devices import pick_device
    from cpc.eval.feature_outputs import FeatureOutput
    from cpc.eval.features import extract_corpus, read_files
    from cpc.progress import progress_bar

    output = FeatureOutput(args.out, args.format, args.dtype, args.overwrite)
    model = load(args.checkpoint)
    if not args.int8:  # int8 kernels are CPU kernels
        model.to(pick_device(args.device))
    rate = model.config.sample_rate
    source = Path(args.input)
    skips = SkipCounter()

    def progress(inputs):  # the bar counts skipped files too; it starts once the settings have been checked
        yield from progress_bar(inputs, desc="extracting", unit="file", dynamic_ncols=True)

    def from_shards():
        loaded = load_utterances(args.input, rate)
        skips.merge(loaded.skips.drain())
        yield from ((u.key, u.wav) for u in progress(loaded))

    chunk = round(args.chunk_seconds * rate)
    if is_audio_file(source) or (source.is_dir() and not (source / "index.json").exists()):
        utterances = read_files(progress(items_from_path(source)), rate, skips, long_samples=chunk)
    else:
        resolve_shards(args.input)  # a wrong path fails now, before any work
        utterances = from_shards()
    features = extract_corpus(model, utterances, args.layer, args.batch, chunk, args.precision, args.int8, skips)
    print(output.write(features, args.layer, rate / model.hop))
    if skips.counts:
        print(f"skipped: {skips.report()}")


def export(args: argparse.Namespace) -> None:
    """Checkpoint -> the streaming feature extractor as an ONNX graph (fixed chunk size, state in and out)."""
    from cpc.checkpoint import load
    from cpc.eval.export import export_onnx

    model = load(args.checkpoint)
    rate = model.config.sample_rate
    step = export_onnx(model, args.out, round(args.chunk_seconds * rate), args.layer)
    print(f"wrote {args.out}: {step.chunk} samples ({step.chunk / rate:g} s) per call -> {step.chunk // model.hop} "
          f"frames of {args.layer} ({model.layer_dim(args.layer)}-dim), {step.lag} frame(s) behind the audio; "
          f"inputs {', '.join(step.input_names())}")


def probe(args: argparse.Namespace) -> None:
    """Phone (frame) or speaker probes, or video-clip probes (each clip target from pooled features, per-frame
    labels frame by frame), for each --features with the same probe and split; a table, JSON, PNGs."""
    from cpc.eval.probe_runs import run_probes
    from cpc.eval.probes import ProbeConfig

    config = ProbeConfig(hidden=args.hidden, context=args.context, epochs=args.epochs, lr=args.lr,
                         batch_size=args.batch_size)
    results, report = run_probes(args.task, args.train, args.test, args.features, args.layer, config, args.out,
                                 args.classes, args.target, args.phones, args.device,
                                 say=lambda line: print(line, flush=True))
    print(f"wrote {results} and the confusion PNGs in {results.parent}; report: {report}")


def model_features(spec: str, layer: str, device: str):
    """The featurizer of a checkpoint / run folder (or a baseline / random: spec) on `device`; mistakes as UserError."""
    from cpc.errors import UserError
    from cpc.eval.featurize import featurizer

    from cpc.models.cpc import MODEL_LAYERS

    if layer not in MODEL_LAYERS:
        raise UserError(f"--layer {layer}: a model's features are {', '.join(MODEL_LAYERS)}")
    try:
        return featurizer(spec, layer, device=device)
    except ValueError as error:  # a checkpoint that does not load, an unknown preset
        raise UserError(f"{spec}: {error}") from None


def abx(args: argparse.Namespace) -> None:
    """ABX error rates (percent) of FEATURES on ITEMS, or of a model's features extracted on the fly from --audio."""
    import json
    import math

    from cpc.errors import UserError
    from cpc.eval.abx.items import read_items
    from cpc.eval.abx.score import CONTEXT_MODES, SPEAKER_MODES, abx_errors
    from cpc.eval.sources import ExtractedFeatures, feature_seconds, open_audio, open_features

    if len(args.inputs) != (1 if args.model else 2):
        raise UserError("give FEATURES ITEMS, or --model RUN --audio AUDIO ITEMS (see cpc abx --help)")
    items = read_items(args.inputs[-1])
    device = args.device
    if args.model:
        if not args.audio:
            raise UserError(f"--model {args.model} needs --audio: the shards or audio folder of the item file's files")
        compute = model_features(args.model, args.layer or "c", device)
        audio = open_audio(args.audio, compute.sample_rate, keys=set(items.files.tolist()))
        features, frame_seconds = ExtractedFeatures(compute, audio, audio.source), compute.frame_seconds
    else:
        features = open_features(args.inputs[0], keys=set(items.files.tolist()), layer=args.layer)
        frame_seconds = feature_seconds(features)
    size = args.feature_size if args.feature_size is not None else frame_seconds or 0.01
    scores = abx_errors(features, items, size, args.distance, args.speaker_mode, args.context_mode,
                        args.max_size_group, args.max_x_across, args.seed, device, progress=not args.quiet)
    print(f"ABX error % ({args.distance}, {1000 * size:g} ms frames, {len(items)} items of {items.source})")
    print(f"{'':<16}" + "".join(f"{s + ' speaker':>17}" for s in SPEAKER_MODES))
    for context in CONTEXT_MODES:
        cells = [scores.get(f"{s}-{context}") for s in SPEAKER_MODES]
        if any(c is not None for c in cells):
            print(f"{context + ' context':<16}" + "".join(f"{'-' if c is None else f'{c:.2f}':>17}" for c in cells))
    if args.json:
        print(json.dumps({k: None if math.isnan(v) else v for k, v in scores.items()}))


def units(args: argparse.Namespace) -> None:
    """k-means units of a model's frames: `fit` writes the centroids, `apply` one unit sequence per utterance."""
    from cpc.eval import units as lib
    from cpc.devices import pick_device
    from cpc.eval.sources import ExtractedFeatures, open_audio
    from cpc.progress import progress_bar

    device = args.device
    if args.action == "fit":
        compute = model_features(args.model, args.layer, device)
        features = ExtractedFeatures(compute, open_audio(args.audio, compute.sample_rate))
        frames = lib.sample_frames(progress_bar(features.values(), "frames", len(features), unit="utt"),
                                   args.max_frames, args.seed)
        fitted = lib.fit_units(frames, args.k, args.seed, args.batch_size, args.epochs, args.backend, device, True,
                               layer=args.layer, model=lib.model_name(args.model),
                               frame_seconds=compute.frame_seconds or 0.01)
        out = args.out or lib.default_path(args.model, args.k, args.layer)
        lib.save_units(fitted, out)
        print(f"wrote {fitted.k} centroids ({fitted.backend} k-means of {fitted.frames} frames, inertia "
              f"{fitted.inertia:.4g}) to {out}")
        return
    fitted = lib.load_units(args.units)
    compute = model_features(args.model or fitted.model, fitted.layer, device)
    features = ExtractedFeatures(compute, open_audio(args.audio, compute.sample_rate))
    centroids = fitted.centroids.to(pick_device(device))
    sequences = ((key, lib.assign(features[key], centroids).cpu())
                 for key in progress_bar(features, "units", len(features), unit="utt"))
    count, shards = lib.write_unit_sequences(sequences, fitted, args.out)
    where = f"to {args.out}" if shards is None else f"in {shards} shard(s) to {args.out}"
    print(f"wrote {count} unit sequences (k={fitted.k}) {where}")


def abx_items(args: argparse.Namespace) -> None:
    """Item file from frame labels (converted_aligned_phones.txt format) and speakers."""
    from cpc.eval.abx.items import items_from_alignments

    count, utterances, left = items_from_alignments(args.alignments, args.speakers, args.out, args.unit, args.phones,
                                                    args.silence or (0,))
    print(f"wrote {count} {args.unit} items of {utterances} utterances to {args.out}"
          + (f" ({left} aligned utterances without a speaker left out)" if left else ""))


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, except where there is none to show: required options, flags,
    options without a default, and help that already says its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        nothing = action.default is None or action.default is False or action.default == []
        if action.required or nothing or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def abx_items_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cpc abx items", description="write an ABX item file from frame labels",
                                formatter_class=DefaultsFormatter)
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    p.add_argument("alignments", help="frame labels, converted_aligned_phones.txt format (one label per 10 ms)")
    p.add_argument("speakers", help="shards (speakers from their metadata), a file of `utterance speaker` lines, or "
                   "prefix:SEP (the key up to SEP; prefix:- for LibriSpeech ids)")
    p.add_argument("out", help="the item file to write")
    p.add_argument("--unit", default="phone", choices=["phone", "triphone"],
                   help="phone: each phone; triphone: prev+phone+next labelled by its centre (Libri-light files)")
    p.add_argument("--phones", help="phone names, one per label id in order (e.g. the sample's phones.txt)")
    p.add_argument("--silence", type=int, action="append", help="silence label id(s), never a centre (default 0)")
    p.set_defaults(run=abx_items, command="abx items")
    return p


def main(argv: list[str] | None = None) -> None:
    """Runs one subcommand. A mistake the user can fix (cpc.errors.UserError, a missing file) prints one line,
    `cpc <command>: <message>`, and exits 2; Ctrl-C exits 130 with one line, SIGTERM or SIGUSR1 during training 75
    (cpc.errors.REQUEUE_EXIT_STATUS); --debug keeps the traceback."""
    from cpc.errors import Interrupted, UserError

    argv = sys.argv[1:] if argv is None else list(argv)
    items = argv[:2] == ["abx", "items"]  # its own parser: positional arguments unlike `cpc abx`'s
    args = abx_items_parser().parse_args(argv[2:]) if items else parser().parse_args(argv)
    try:
        args.run(args)
    except (UserError, FileNotFoundError, Interrupted, KeyboardInterrupt) as error:
        if getattr(args, "debug", False):
            raise
        message = str(error) if not isinstance(error, KeyboardInterrupt) else "interrupted (Ctrl-C)"
        if int(os.environ.get("RANK", 0)) == 0:  # under torchrun every rank fails alike: say it once
            print(f"cpc {args.command}: {message}", file=sys.stderr)
        stopped = isinstance(error, (Interrupted, KeyboardInterrupt))  # Ctrl-C 130; SIGTERM, SIGUSR1 75: requeue
        raise SystemExit(getattr(error, "exit_status", 130) if stopped else 2) from None


def parser() -> argparse.ArgumentParser:
    from cpc.devices import DEVICES
    from cpc.models.cpc import FEATURE_LAYERS, MODEL_LAYERS, CPCModelConfig

    parser = argparse.ArgumentParser(prog="cpc", description="Contrastive Predictive Coding on sequences")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subcommands = parser.add_subparsers(dest="command", required=True)

    class Commands:  # every subcommand shows its defaults in --help and takes --debug
        @staticmethod
        def add_parser(name, **kwargs):
            return subcommands.add_parser(name, parents=[common], **kwargs,
                                          formatter_class=DefaultsFormatter)

    commands = Commands()
    p = commands.add_parser("shards", help="write WebDataset shards from an audio folder or a TSV manifest")
    p.add_argument("source", help="a folder of audio files; a TSV manifest with path and speaker columns; a Kaldi "
                   "data directory (wav.scp, segments, utt2spk, text; cpc[kaldi]); a Lhotse CutSet or RecordingSet "
                   ".jsonl.gz (cpc[lhotse]); a Hugging Face dataset folder from save_to_disk (cpc[hf])")
    p.add_argument("out", help="output folder; one sub-folder per --split")
    p.add_argument("--alignments", help="frame labels, converted_aligned_phones.txt format")
    p.add_argument("--split", action="append", default=[], metavar="NAME=FILE", help="key list of a split")
    p.add_argument("--speaker-level", type=int, default=1, help="folder levels above a file naming its speaker")
    p.add_argument("--audio-column", default="audio", help="Hugging Face datasets: the Audio column")
    p.add_argument("--speaker-column", help="Hugging Face datasets: the speaker column (default: speaker, else "
                   "speaker_id, else none)")
    p.add_argument("--max-seconds", type=float, default=30.0, help="longer recordings are cut into pieces")
    p.add_argument("--shard-mb", type=float, default=500.0, help="a new shard starts once one holds this many MB")
    p.add_argument("--sample-rate", type=int, default=CPCModelConfig.sample_rate,
                   help="recordings are resampled to this rate (the model's)")
    p.set_defaults(run=shards)

    p = commands.add_parser("pretrain", help="pretrain from a YAML recipe (same trainer for every method)")
    p.add_argument("recipe", help="YAML recipe, e.g. recipes/demo/cpc.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, dotted for nested keys: --set optim.lr=3e-4")
    p.add_argument("--resume", action="store_true", help="continue from the newest readable checkpoint in train.out; "
                   "a folder without one starts at step 0 (one command for the first start, requeues and restarts)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in a train.out that holds a run (deletes its checkpoints and logs)")
    p.set_defaults(run=pretrain)

    from cpc.eval.feature_outputs import DTYPES, FORMATS
    from cpc.eval.probe_runs import KINDS as PROBE_KINDS
    from cpc.eval.features import LONG_SECONDS  # the default chunk of long recordings

    p = commands.add_parser("extract", help="frame-level features (one vector per 10 ms) from a checkpoint")
    p.add_argument("checkpoint", help="a checkpoint file or run folder")
    p.add_argument("input", help="shards (index, folder with index.json, pattern), a folder of audio files or one "
                   "audio file")
    p.add_argument("out", help="output folder, new or empty (see --overwrite): one KEY.npy per utterance, or shards")
    p.add_argument("--layer", default="c", choices=MODEL_LAYERS,
                   help="z: encoder frames, c: context (g_ar) frames, both: the two concatenated, c_bidir: context "
                        "of both directions (bidirectional models; offline, not with --chunk-seconds)")
    p.add_argument("--format", default="npy", choices=FORMATS,
                   help="npy: one file per utterance; shards: one tar column, same keys and order as the input; "
                        "kaldi: feats.ark + feats.scp (pip install 'cpc[kaldi]')")
    p.add_argument("--dtype", default="float32", choices=list(DTYPES), help="dtype of the stored arrays")
    p.add_argument("--batch", type=int, default=8, help="utterances per padded batch")
    p.add_argument("--chunk-seconds", type=float, default=LONG_SECONDS,
                   help="recordings longer than this are streamed in chunks this long, files read in blocks, so "
                        "memory does not grow with a file's length (at least one frame's context, 0.03 s for the "
                        "bundled models); 0: encode whole files")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an OUT that holds files: an earlier extraction's .npy, shard-*.tar and index.json "
                        "there are deleted first, other files kept")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="float math: bf16 autocast is ~2x faster on CPUs with native bf16 (AVX-512 BF16, AMX)")
    p.add_argument("--int8", action="store_true",
                   help="run the encoder in int8 (BatchNorm or no-norm encoders, x86 CPU), calibrated on the first "
                        "utterances: fastest on CPU; see docs/features.md, 'int8 extraction', for what it changes")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto: CUDA when present")
    p.set_defaults(run=extract)

    p = commands.add_parser("export", help="the streaming feature extractor as ONNX (chunk + state in, frames + "
                            "state out), for onnxruntime")
    p.add_argument("checkpoint", help="a checkpoint file or run folder (GRU or LSTM context model)")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--chunk-seconds", type=float, default=0.5,
                   help="audio per call, fixed in the graph; a multiple of the hop (0.01 s for the bundled models)")
    p.add_argument("--layer", default="c", choices=["z", "c", "both"],
                   help="z: encoder frames, c: context (g_ar) frames, both: the two concatenated")
    p.set_defaults(run=export)

    p = commands.add_parser("probe", help="linear phone, speaker or video-clip probes on frozen features")
    p.add_argument("task", choices=PROBE_KINDS,
                   help="clips: each clip target (e.g. digit) from pooled features, per-frame labels by frame")
    p.add_argument("--train", required=True, help="labelled training shards")
    p.add_argument("--test", required=True, help="held-out shards, scored once")
    p.add_argument("--features", action="append", required=True,
                   help="a checkpoint (file or run folder), mfcc, logmel, random:PRESET, int8:CHECKPOINT, or A+B "
                        "(the two concatenated frame by frame, e.g. runs/x+mfcc); repeat to compare")
    p.add_argument("--layer", default="c", choices=FEATURE_LAYERS,
                   help="c_bidir: both directions' context (bidirectional models, offline); appearance: video "
                        "frames' spatially pooled trunk maps")
    p.add_argument("--context", type=int, default=0, help="frames of context each side (phones)")
    p.add_argument("--hidden", type=int, default=0, help="one hidden layer of this width; 0: linear")
    p.add_argument("--classes", type=int, default=40, help="frame label classes (phones; clips' frame labels)")
    p.add_argument("--phones", help="label names, one per line, for the confusion images (default: the phones.txt "
                   "beside the --train shards or one folder up, if any; else label ids)")
    p.add_argument("--target", action="append", default=[], help="clips: a clip target to probe; repeat for "
                   "several (default: all)")
    p.add_argument("--epochs", type=int, default=20, help="probe training epochs; the best on a dev tenth is kept")
    p.add_argument("--lr", type=float, default=1e-3, help="probe learning rate (Adam)")
    p.add_argument("--batch-size", type=int, default=512, help="frames (phones) or utterances per probe step")
    p.add_argument("--out", default="runs/probe", help="folder for the JSON results and confusion PNGs")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="where models compute features (auto: CUDA when present)")
    p.set_defaults(run=probe)
    p = commands.add_parser("abx", help="ABX phone discriminability (Libri-light / ZeroSpeech 2021), error in %%",
                            usage="cpc abx [options] FEATURES ITEMS\n       cpc abx --model RUN --audio AUDIO [options] "
                            "ITEMS\n       cpc abx items ALIGNMENTS SPEAKERS OUT.item [--unit phone|triphone]",
                            description="ABX error rates of features on an item file; `cpc abx items --help`: item "
                            "files from frame labels")
    p.add_argument("inputs", nargs="+", metavar="[FEATURES] ITEMS",
                   help="FEATURES (a folder of <file>.npy, frames x dim; shards of cpc extract or cpc units apply; a "
                        "units .txt) and the item file; with --model, the item file only")
    p.add_argument("--model", help="extract on the fly: a checkpoint or run folder (or mfcc, logmel, random:PRESET, A+B)")
    p.add_argument("--audio", help="with --model: audio shards, an audio folder or one audio file holding the item "
                   "file's files")
    p.add_argument("--layer", help="with --model: z, c (default), both or c_bidir; FEATURES shards: the member to read "
                   "(default: what their metadata says)")
    p.add_argument("--speaker-mode", default="both", choices=["within", "across", "both"],
                   help="within: A, B, X from one speaker; across: X from another speaker")
    p.add_argument("--context-mode", default="both", choices=["within", "any", "both"],
                   help="within: A, B, X share the phone context; any: context ignored")
    p.add_argument("--distance", default="cosine", choices=["cosine", "euclidean", "kl", "kl_symmetric"],
                   help="frame distance inside the DTW (cosine: angular, the reference's default)")
    p.add_argument("--feature-size", type=float, help="frame shift in seconds (default: the model's hop, what the "
                   "shards record, else 0.01)")
    p.add_argument("--max-size-group", type=int, default=10, help="items drawn per (context, speaker, phone)")
    p.add_argument("--max-x-across", type=int, default=5, help="X speakers drawn per A (across speaker)")
    p.add_argument("--seed", type=int, default=3459, help="the reference's seed")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--json", action="store_true", help="end with one JSON line {\"within-within\": 9.57, ...}")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=abx)
    p = commands.add_parser("units", help="discrete units: k-means of a model's frames (fit), unit sequences (apply)")
    actions = p.add_subparsers(dest="action", required=True, help="fit: learn the units; apply: write unit sequences")
    q = actions.add_parser("fit", help="minibatch k-means of frames of a model (faiss if installed, else torch)",
                           formatter_class=DefaultsFormatter)
    q.add_argument("model", help="a checkpoint or run folder (or mfcc, logmel)")
    q.add_argument("audio", help="audio shards, an audio folder or one audio file to take frames from")
    q.add_argument("--k", type=int, default=50, help="number of units")
    q.add_argument("--layer", default="c", choices=MODEL_LAYERS, help="the frames clustered: z, c, both or c_bidir")
    q.add_argument("--max-frames", type=int, default=1_000_000, help="a uniform sample of at most this many frames")
    q.add_argument("--epochs", type=int, default=20, help="passes over the sampled frames")
    q.add_argument("--batch-size", type=int, default=10000, help="frames per minibatch (torch backend)")
    q.add_argument("--backend", default="auto", choices=["auto", "torch", "faiss"],
                   help="auto: faiss when importable, else torch")
    q.add_argument("--seed", type=int, default=0, help="k-means++ seeding and minibatch order")
    q.add_argument("--out", help="the units file (default: units-k<K>-<layer>.pt beside the checkpoint)")
    q = actions.add_parser("apply", help="one unit sequence per utterance, as .txt lines or a shard column",
                           formatter_class=DefaultsFormatter)
    q.add_argument("units", help="a units file written by cpc units fit")
    q.add_argument("audio", help="audio shards, an audio folder or one audio file")
    q.add_argument("out", help="OUT.txt (`<key> id id ...` per line) or a folder for shards (units.npy per sample)")
    q.add_argument("--model", help="the checkpoint (default: the one the units file names)")
    for q in actions.choices.values():
        q.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    p.set_defaults(run=units)
    return parser


if __name__ == "__main__":
    sys.exit(main())
