"""Real video -> frame-array shards: PyAV decoding, frame-rate resampling, resizing, class folders, splits."""

import json

import numpy as np
import pytest

from cpc.data.ingest import folder_clips, read_video
from cpc.data.video import VideoDataConfig, video_stream

from ..datasets.conftest import load_script

av = pytest.importorskip("av")
make_shards = load_script("datasets/video_folder/make_shards.py")


def write_video(path, frames: int, fps: int = 20, size=(48, 64)):
    """A moving bright square, encoded with mpeg4 (in every PyAV wheel)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for t in range(frames):
            image = np.zeros((*size, 3), np.uint8)
            image[10:26, 2 * t : 2 * t + 16] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def test_read_video_decodes_every_frame_and_resamples_the_rate(tmp_path):
    write_video(tmp_path / "a.avi", frames=20)
    video, fps = read_video(tmp_path / "a.avi")
    assert video.shape == (20, 48, 64, 3) and video.dtype == np.uint8 and fps == 20
    assert video[5, 10:26, 10:26].mean() > 200 and video[5, 30:].mean() < 20  # the square where it was drawn
    half, rate = read_video(tmp_path / "a.avi", fps=10)
    assert rate == 10 and len(half) == 10 and np.array_equal(half[3], video[6])
    (tmp_path / "bad.avi").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="bad.avi: cannot decode video"):
        read_video(tmp_path / "bad.avi")


def test_folder_to_shards_with_classes_clips_splits_and_frame_folders(tmp_path):
    from PIL import Image

    for name in ("walk/v1.avi", "walk/v2.avi", "run/v3.avi"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(tmp_path / "in" / name, frames=24)
    (tmp_path / "in" / "run" / "broken.avi").write_bytes(b"junk")
    frames_dir = tmp_path / "in" / "run" / "v4"
    frames_dir.mkdir()
    for t in range(16):
        Image.fromarray(np.full((40, 40, 3), 10 * t, np.uint8)).save(frames_dir / f"{t:04d}.png")
    (tmp_path / "test.txt").write_text("walk/v2.avi 2\n")
    make_shards.main([str(tmp_path / "in"), str(tmp_path / "out"), "--size", "32", "--clip-frames", "8", "--grey",
                      "--class-level", "1", "--split", f"test={tmp_path / 'test.txt'}"])
    config = VideoDataConfig(shards=str(tmp_path / "out" / "train"), batch_size=1)
    train = list(video_stream(config, train=False, windows=False))
    keys = [b["key"][0] for b in train]
    assert sorted(keys) == sorted([f"walk_v1_{i:04d}" for i in range(3)] + [f"run_v3_{i:04d}" for i in range(3)]
                                  + ["run_v4_0000", "run_v4_0001"])  # the broken file is reported and left out
    assert all(b["frames"].shape == (1, 8, 32, 32, 1) for b in train)
    classes = {b["key"][0]: int(b["targets"]["class"][0]) for b in train}
    assert classes["walk_v1_0000"] == 1 and classes["run_v3_0000"] == classes["run_v4_0000"] == 0  # sorted names
    test = list(video_stream(VideoDataConfig(shards=str(tmp_path / "out" / "test"), batch_size=1), train=False,
                             windows=False))
    assert [b["key"][0] for b in test] == [f"walk_v2_{i:04d}" for i in range(3)]
    index = json.loads((tmp_path / "out" / "train" / "index.json").read_text())
    assert index["samples"] == 8 and index["seconds"] == pytest.approx(6 * 8 / 20 + 2 * 8 / 25)


def test_an_empty_folder_says_what_it_looked_for(tmp_path):
    with pytest.raises(ValueError, match="no videos .* or frame-image folders under"):
        list(folder_clips(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(folder_clips(tmp_path / "missing"))
