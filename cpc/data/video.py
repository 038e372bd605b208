"""The video-frame stream: clips stored as uint8 `.frames.npy` (T, H, W, C) (or numbered `.0000.jpg` frames) ->
windows of T frames -> batches {"frames": (B, T, H, W, C) uint8, "labels": per-frame ids?, "targets": clip ids?}.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from cpc.data.labels import safe_key
from cpc.data.shards import npy_bytes, resolve_shards
from cpc.data.stages import SkipCounter, Stream


@dataclass
class VideoDataConfig:
    shards: str = ""
    batch_size: int = 16
    window: int = 16  # frames
    shuffle_samples: int = 100
    shuffle_windows: int = 1000
    num_workers: int = 0
    seed: int = 0


def decode_video(sample: dict[str, Any], skips: SkipCounter) -> dict[str, Any] | None:
    """One shard sample -> {"key", "frames" uint8 (T, H, W, C), "labels" per-frame or None, "targets" dict}."""
    key = sample["__key__"]
    try:
        meta = json.loads(sample["json"]) if "json" in sample else {}
        if "frames.npy" in sample:
            frames = np.load(io.BytesIO(sample["frames.npy"]))
        else:
            from PIL import Image

            names = sorted(n for n in sample if re.fullmatch(r"\d+\.(jpg|jpeg|png)", n))
            if not names:
                skips.skip("no frames in sample", key)
                return None
            frames = np.stack([np.asarray(Image.open(io.BytesIO(sample[n])).convert("RGB")) for n in names])
        labels = np.load(io.BytesIO(sample["labels.npy"])) if "labels.npy" in sample else None
    except Exception:  # a corrupt clip must never stop a long run
        skips.skip("unreadable frames or metadata", key)
        return None
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.dtype != np.uint8:
        skips.skip(f"frames must be uint8 (T, H, W, C), got {frames.dtype} {frames.shape}", key)
        return None
    return {"key": key, "frames": frames, "labels": labels, "speaker": "", "utterance": key,
            "targets": {k: int(v) for k, v in meta.get("targets", {}).items()}}


def clip_samples(clips: Iterable[tuple[str, np.ndarray, dict[str, Any]]], fps: float = 25.0) -> Iterator[dict[str, Any]]:
    """(key, frames uint8 (T, H, W, C), meta) -> shard samples; meta may hold "targets" (clip class ids) and
    "labels" (one id per frame)."""
    for key, frames, meta in clips:
        meta = dict(meta)
        labels = meta.pop("labels", None)
        meta.update(num_samples=len(frames), sample_rate=meta.get("fps", fps))  # the index reports seconds of video
        sample = {"__key__": key, "frames.npy": npy_bytes(np.ascontiguousarray(frames, dtype=np.uint8)),
                  "json": json.dumps(meta).encode()}
        if labels is not None:
            sample["labels.npy"] = npy_bytes(np.asarray(labels, dtype=np.int16))
        yield sample


VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def resize_frames(frames: np.ndarray, size: int | None, grey: bool) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 1 or 3) uint8: the shorter side scaled to `size`, centre crop."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    video = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, C, H, W), what torchvision's v2 ops take
    if size is not None:
        video = TF.center_crop(TF.resize(video, size, antialias=True), [size, size])
    if grey:
        video = TF.rgb_to_grayscale(video)
    return video.permute(0, 2, 3, 1).contiguous().numpy()


def read_video(path: str | Path, fps: float | None = None) -> tuple[np.ndarray, float]:
    """A video file -> (frames (T, H, W, 3) uint8, frames per second), decoded with PyAV; with `fps`, frames are
    taken at that rate (nearest earlier frame), so clips from sources of different rates line up in time."""
    try:
        import av
    except ImportError:
        raise ImportError("reading video files needs PyAV: pip install 'cpc[video]' (or pip install av)") from None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: cannot decode video ({error})") from None
    if not frames:
        raise ValueError(f"{path}: no video frames")
    video = np.stack(frames)
    if fps is None or abs(fps - rate) < 1e-6:
        return video, rate
    picks = np.floor(np.arange(0, len(video) * fps / rate) * rate / fps).astype(int)
    return video[picks[picks < len(video)]], fps


def read_frame_folder(folder: Path) -> np.ndarray:
    """A folder of frame images, in name order -> (T, H, W, 3) uint8."""
    from PIL import Image

    names = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in names])


def video_sources(root: str | Path) -> list[Path]:
    """Video files and folders of frame images under `root` (recursively), in name order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    folders = sorted(d for d in [root, *root.rglob("*")] if d.is_dir() and any(
        f.suffix.lower() in FRAME_SUFFIXES for f in d.iterdir()))
    if not files and not folders:
        raise ValueError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) or frame-image folders under {root}")
    return files + folders


def source_key(root: str | Path, source: Path) -> str:
    """A video's shard key: its path under the root, without suffix, made key-safe."""
    return safe_key(str(source.relative_to(root).with_suffix(""))) or "frames"


def folder_clips(root: str | Path, sources: list[Path] | None = None, size: int | None = 64,
                 fps: float | None = None, clip_frames: int = 0, grey: bool = False, class_level: int = 0,
                 skipped: list[str] | None = None) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
    """Videos (decodable by PyAV) and folders of frame images under `root` (or just `sources` among them), decoded
    one at a time -> (key, frames uint8, meta) clips for `clip_samples`. Long videos are cut into clips of
    `clip_frames` frames, keys "<video key>_NNNN" (0: one clip per video). With class_level = n, the folder n levels
    above a video names its class (UCF-101 style class/video.avi): meta "targets" {"class": id}, ids in sorted name
    order over all of root, and "class_name". Unreadable videos are reported in `skipped` and left out."""
    root = Path(root)
    everything = video_sources(root)
    class_of = lambda p: p.parents[class_level - 1].name if class_level else None
    classes = {name: i for i, name in enumerate(sorted({class_of(p) for p in everything} - {None}))}
    for source in everything if sources is None else sources:
        try:
            frames, rate = read_video(source, fps) if source.is_file() else (read_frame_folder(source), fps or 25.0)
        except ValueError as error:
            if skipped is None:
                raise
            skipped.append(str(error))
            continue
        frames = resize_frames(frames, size, grey)
        key = source_key(root, source)
        meta: dict[str, Any] = {"source": str(source), "fps": rate}
        if class_level:
            meta.update(targets={"class": classes[class_of(source)]}, class_name=class_of(source))
        step = clip_frames or len(frames)
        for number, start in enumerate(range(0, len(frames) - step + 1, step)):
            yield (f"{key}_{number:04d}" if clip_frames else key), frames[start : start + step], dict(meta)


def video_stream(config: VideoDataConfig, train: bool, start: int = 0, windows: bool = True) -> Stream:
    """Training: endless shuffled windows of `window` frames. Evaluation: every clip once (windows from frame 0,
    or whole clips when windows=False)."""
    return Stream(
        resolve_shards(config.shards),
        decode_video,
        field="frames",
        batch_size=config.batch_size,
        train=train,
        window=config.window if windows else None,
        quantum=1,
        shuffle_samples=config.shuffle_samples,
        shuffle_items=config.shuffle_windows,
        seed=config.seed,
        start=start,
    )
