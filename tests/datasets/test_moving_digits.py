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


def test_test_clips_cover_every_digit_with_unseen_images(tmp_path):
    from cpc.data.labelled import load_clips

    digits.main(["--out", str(tmp_path), "--clips", "200", "--frames", "2"])
    train, test = load_clips(tmp_path / "train"), load_clips(tmp_path / "test")
    assert {c.targets["digit"] for c in test} == set(range(10)) == {c.targets["digit"] for c in train}
    first = lambda clip: clip.frames[0, :, :, 0][clip.frames[0, :, :, 0].sum(1) > 0]  # the digit's non-empty rows
    seen = {first(c).numpy().tobytes() for c in train}
    assert not any(first(c).numpy().tobytes() in seen for c in test)


def video_cpc(steps=3, negatives=32):
    from cpc.methods.cpc import CPCMethod, cpc_preset
    from cpc.models.autoregressive import AutoregressiveConfig
    from cpc.models.encoders import ImageEncoderConfig

    config = cpc_preset("video")
    config.model.frames.image = ImageEncoderConfig(in_channels=1, channels=(16, 32, 32), strides=(2, 2, 2))
    config.model.frames.dim = 64
    config.model.ar = AutoregressiveConfig(kind="gru", dim=64)
    config.model.predictor.steps = steps
    config.infonce.negatives = negatives
    return CPCMethod(config)


def test_cpc_learns_to_predict_moving_digits():
    """Loss falls and InfoNCE accuracy climbs far above chance (1 / (N + 1) = 3 %) in 150 steps."""
    rng_clips = digits.clips(*digits.load_digits("mnist"), count=600, frames=10, canvas=32, digit_size=14,
                             speed=2, seed=0, prefix="c")
    videos = torch.from_numpy(np.stack([video for _, video, _ in rng_clips]))
    method = video_cpc()
    optimiser = torch.optim.Adam(method.parameters(), lr=2e-3)
    history = []
    for step in range(150):
        rows = torch.randint(0, len(videos), (16,))
        loss, logs = method.training_step({"frames": videos[rows]})
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append((float(loss.detach()), float(logs["accuracy"])))
    first, last = np.mean(history[:10], axis=0), np.mean(history[-20:], axis=0)
    assert last[0] < first[0] - 0.5
    assert last[1] > 0.25


def test_recipe_pretrains_through_the_trainer_and_probes_beat_random_init(tmp_path):
    """The recipe's path end to end, small: shards -> cpc pretrain (video) -> cpc probe clips; motion direction
    from c_t must beat the same architecture at random init."""
    import json

    from cpc.cli import main as cli

    digits.main(["--out", str(tmp_path / "data"), "--clips", "300", "--frames", "10"])
    cli(["pretrain", "recipes/moving_digits/cpc.yaml", "--set", "train.steps=150", "--set", "train.progress=false",
         "--set", f"train.out={tmp_path / 'run'}", "--set", f"data.shards={tmp_path / 'data' / 'train'}",
         "--set", f"val_shards={tmp_path / 'data' / 'test'}", "--set", "data.window=8",
         "--set", "data.batch_size=16", "--set", "cpc.infonce.negatives=64",
         "--set", "train.checkpoint_every=150", "--set", "train.validate_every=150"])
    run = str(tmp_path / "run")
    cli(["probe", "clips", "--train", str(tmp_path / "data" / "train"), "--test", str(tmp_path / "data" / "test"),
         "--features", run, "--features", f"random:{run}", "--classes", "8", "--target", "digit",
         "--epochs", "30", "--batch-size", "128", "--out", str(tmp_path / "probe")])
    results = json.loads((tmp_path / "probe" / "clips.json").read_text())["results"]
    trained, random = results[run], results[f"random:{run}"]
    assert set(trained) == {"digit", "frame labels"}
    assert trained["frame labels"]["accuracy"] > random["frame labels"]["accuracy"] + 0.1
    assert trained["frame labels"]["accuracy"] > 0.4  # 8 directions: chance 12.5 %
    assert (tmp_path / "probe" / "confusion_frame_labels_run.png").exists()
