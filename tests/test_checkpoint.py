import errno
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cpc
from cpc import checkpoint
from cpc.methods import CPCMethod, cpc_preset
from cpc.train.optim import OptimConfig
from cpc.train.trainer import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample"


class Planted:
    """Unpickling this creates a folder: what a crafted checkpoint could do with any call."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def crafted(tmp_path: Path) -> tuple[Path, Path]:
    path, marker = tmp_path / "crafted.pt", tmp_path / "created-by-unpickling"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": Planted(marker)}, path)
    return path, marker


def trained_run(tmp_path: Path, steps: int = 2) -> Path:
    torch.manual_seed(0)
    method = CPCMethod(cpc_preset("small"))
    batches = [{"wav": torch.randn(2, 3200)} for _ in range(steps)]
    out = tmp_path / "run"
    config = TrainConfig(steps=steps, out=str(out), checkpoint_every=steps, progress=False, device="cpu")
    Trainer(method, lambda start, segment: iter(batches[start:]), OptimConfig(), config).fit()
    return out


def test_the_crafted_file_really_runs_code_when_unpickled(tmp_path):
    path, marker = crafted(tmp_path)
    torch.load(path, weights_only=False)  # what the old reader did
    assert marker.is_dir()


def test_load_refuses_a_crafted_checkpoint_and_creates_nothing(tmp_path):
    path, marker = crafted(tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match="refused, because loading it could run code"):
        cpc.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["extract", "probe"])
def test_cli_refuses_a_crafted_checkpoint_in_one_line(tmp_path, command):
    path, marker = crafted(tmp_path)
    args = {"extract": ["extract", str(path), str(SAMPLE / "test"), str(tmp_path / "out")],
            "probe": ["probe", "phones", "--train", str(SAMPLE / "test"), "--test", str(SAMPLE / "test"),
                      "--features", str(path), "--out", str(tmp_path / "probe")]}[command]
    done = subprocess.run([sys.executable, "-m", "cpc.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused, because loading it could run code" in lines[0], done.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_load_rebuilds_the_model_from_its_own_config_alone(tmp_path):
    out = trained_run(tmp_path)
    state = checkpoint.read(out)
    del state["config"], state["optimiser"]  # nothing of the training setup is needed
    torch.save(state, tmp_path / "model-only.pt")
    model = cpc.load(tmp_path / "model-only.pt")
    assert all(torch.equal(v, state["model"][f"model.{k}"]) for k, v in model.state_dict().items())
    assert not model.training and model.config.encoder.channels == 64


def test_load_leaves_the_global_rng_alone_and_random_init_is_reproducible(tmp_path):
    out = trained_run(tmp_path)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first, second = cpc.load(out, weights=False), cpc.load(out, weights=False)
    cpc.load(out)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())
    trained = cpc.load(out)
    assert any(not torch.equal(v, trained.state_dict()[k]) for k, v in first.state_dict().items())


def test_rng_states_survive_a_safe_round_trip(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    torch.save({"model": {}, "rng": [checkpoint.rng_states()]}, tmp_path / "s.pt")
    expected = torch.rand(3), np.random.rand(3), random.random()
    state = checkpoint.read(tmp_path / "s.pt")
    checkpoint.restore_rng(state["rng"][0])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_old_checkpoints_say_how_to_convert_and_the_converter_works(tmp_path):
    out = trained_run(tmp_path)
    state = checkpoint.read(out)
    old = {k: v for k, v in state.items() if k != "model_config"}
    old["config"] = {"method": "cpc", "cpc_preset": "small", "data": {"hop": 160, "sample_rate": 16000},
                     "train": {"num_workers": 2}}
    old["rng"] = [{"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}]
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(checkpoint.CheckpointError, match="convert"):
        cpc.load(tmp_path / "old.pt")
    subprocess.run([sys.executable, str(ROOT / "tools" / "convert_checkpoint.py"), str(tmp_path / "old.pt")],
                   check=True, capture_output=True)
    converted = checkpoint.read(tmp_path / "old.pt")  # safe now: the rng states are tensors and lists
    assert converted["config"]["data"] == {"num_workers": 2}
    assert converted["config"]["cpc"]["model"]["sample_rate"] == 16000
    model = cpc.load(tmp_path / "old.pt")
    assert all(torch.equal(v, state["model"][f"model.{k}"]) for k, v in model.state_dict().items())


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        cpc.load(tmp_path / "nothing.pt")
    with pytest.raises(checkpoint.CheckpointError, match=r"no checkpoint \(step-\*\.pt\)"):
        cpc.load(tmp_path)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="text.pt is not a readable checkpoint"):
        cpc.load(tmp_path / "text.pt")


def test_interrupted_checkpoint_write_leaves_the_previous_one_readable(tmp_path, monkeypatch):
    checkpoint.save({"model": {}, "step": 1}, tmp_path, 1)

    def dies_half_way(descriptor):
        raise KeyboardInterrupt  # the process is interrupted after part of the file reached the disk

    monkeypatch.setattr(os, "fsync", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save({"model": {}, "step": 2}, tmp_path, 2)
    monkeypatch.undo()
    assert checkpoint.latest(tmp_path).name == "step-00000001.pt"
    assert checkpoint.read(tmp_path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001.pt"]  # no partial file left


def test_a_full_disk_names_the_device_and_the_file_and_keeps_the_older_checkpoints(tmp_path, monkeypatch):
    checkpoint.save({"model": {}, "step": 1}, tmp_path, 1)

    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(checkpoint.CheckpointError) as caught:
        checkpoint.save({"model": {}, "step": 2}, tmp_path, 2)
    assert str(caught.value) == (f"no space left on {checkpoint.mount_point(tmp_path)} writing "
                                 f"{tmp_path / 'step-00000002.pt'}: free some space (older checkpoints were kept) "
                                 "and resume with --resume")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001.pt"]


def test_retention_deletes_only_this_runs_own_older_checkpoints(tmp_path):
    foreign = checkpoint.save({"model": {}, "step": 50}, tmp_path, 50)  # another run's, newer than ours
    own = []
    for step in range(1, 6):
        own = checkpoint.prune(tmp_path, own + [checkpoint.save({"model": {}, "step": step}, tmp_path, step)], 2)
    assert [p.name for p in own] == ["step-00000004.pt", "step-00000005.pt"]
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["step-00000004.pt", "step-00000005.pt",
                                                                  foreign.name]


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".step-00000003.pt.tmp-{host}-{dead.stdout.strip()}"
    live = tmp_path / f".step-00000004.pt.tmp-{host}-{os.getpid()}"
    other_host = tmp_path / ".step-00000005.pt.tmp-elsewhere-1"
    for path in (stale, live, other_host):
        path.write_bytes(b"partial")
    assert checkpoint.remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other_host.exists()

def test_a_truncated_checkpoint_is_called_truncated_and_a_foreign_file_not_a_checkpoint(tmp_path):
    whole = checkpoint.save({"model": {"w": torch.zeros(50000)}, "step": 1}, tmp_path, 1)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[:4000])
    with pytest.raises(checkpoint.CheckpointError) as caught:
        checkpoint.read(cut)
    assert str(caught.value) == (f"{cut} is not a readable checkpoint (truncated: 4000 bytes, the end is missing; an "
                                 "interrupted copy or write?)")
    wav = tmp_path / "audio.pt"
    wav.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(checkpoint.CheckpointError, match=r"audio.pt is not a readable checkpoint \(not a file torch"):
        checkpoint.read(wav)


def test_checkpoints_load_with_the_input_normalisation_they_were_trained_with(tmp_path):
    from cpc.models.cpc import CPCModelConfig
    from cpc.models.encoders import causal_normalize, standardize

    assert CPCModelConfig().input_norm == "causal"  # new configs are causal by default
    shipped = ROOT / "recipes" / "demo" / "cpc_shipped.pt"
    state = torch.load(shipped, map_location="cpu", weights_only=True)
    assert state["model_config"]["config"]["input_norm"] == "causal"
    wav = torch.randn(2, 3200) * 0.3 + 0.2
    model = cpc.load(shipped)
    assert model.config.resolved_input_norm == "causal"
    prior = round(model.config.input_prior_seconds * model.config.sample_rate)
    assert torch.equal(model.prepare(wav), causal_normalize(wav, model.config.input_level, prior)[0])
    recorded = dict(state["model_config"]["config"])
    older = {key: value for key, value in recorded.items()  # saved before input_norm existed: window statistics
             if key not in ("input_norm", "input_level", "input_prior_seconds")}
    for name, config, norm in [("older", older, "window"), ("window", {**recorded, "input_norm": "window"}, "window"),
                               ("unstandardised", {**older, "standardize": False}, "none")]:
        path = tmp_path / f"{name}.pt"
        torch.save({**state, "model_config": {**state["model_config"], "config": config}}, path)
        loaded = cpc.load(path)
        assert loaded.config.resolved_input_norm == norm, name
        expected = {"window": standardize(wav), "none": wav}[norm]
        assert torch.equal(loaded.prepare(wav), expected), name
        for a, b in zip(loaded.state_dict().values(), model.state_dict().values()):
            assert torch.equal(a, b)  # the same weights, read with the normalisation they were trained with


def test_the_data_position_reads_from_this_layout_and_the_older_ones():
    """`data_position` as written; `data_segment` of a checkpoint from before that key; neither: the fallbacks."""
    assert checkpoint.data_position({"data_position": {"batch": 8, "segment": 4}}, batch=0, segment=2) == {
        "batch": 8, "segment": 4}
    assert checkpoint.data_position({"step": 4, "data_segment": 6}, batch=8, segment=2) == {"batch": 8, "segment": 6}
    assert checkpoint.data_position({"step": 4}, batch=8, segment=2) == {"batch": 8, "segment": 2}
