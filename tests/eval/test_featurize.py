import pytest
import torch

import cpc
from cpc.eval.featurize import feature_name, featurizer
from cpc.methods import CPCMethod, cpc_preset
from cpc.train.optim import OptimConfig
from cpc.train.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("run")
    batches = [{"wav": torch.randn(2, 3200)}]
    Trainer(CPCMethod(cpc_preset("small")), lambda start, segment: iter(batches), OptimConfig(),
            TrainConfig(steps=1, out=str(out), progress=False, device="cpu")).fit()
    return out


def test_every_spec_gives_frames_on_the_10_ms_grid(run):
    wav = torch.randn(8000)
    for spec, dim in [("mfcc", 39), ("logmel", 80), (str(run), 64), (f"random:{run}", 64), ("random:small", 64)]:
        assert featurizer(spec)(wav).shape == (50, dim), spec
    assert featurizer(str(run), "both")(wav).shape == (50, 128)


def test_model_specs_are_the_checkpoint_and_random_init_is_its_architecture(run):
    wav = torch.randn(4000)
    assert torch.equal(featurizer(str(run))(wav), cpc.load(run).features(wav))
    random = featurizer(f"random:{run}")(wav)
    assert torch.equal(random, cpc.load(run, weights=False).features(wav))
    assert torch.equal(random, featurizer("random:small")(wav))  # the same preset, the same seed
    assert not torch.allclose(random, featurizer(str(run))(wav))


def test_rates_are_checked_and_bad_specs_named(run):
    assert featurizer("logmel", sample_rate=8000)(torch.randn(8000)).shape == (100, 80)  # 10 ms frames at 8 kHz
    with pytest.raises(ValueError, match="takes 16000 Hz audio; the data is 8000 Hz"):
        featurizer(str(run), sample_rate=8000)
    with pytest.raises(ValueError, match="random:nothing: neither a checkpoint nor a preset"):
        featurizer("random:nothing")


def test_feature_names_are_file_safe(tmp_path):
    (tmp_path / "run_a").mkdir()
    assert feature_name(f"int8:{tmp_path / 'run_a'}") == "int8_run_a"
    assert feature_name(f"random:{tmp_path / 'run_a'}") == "random_run_a"
    assert feature_name("random:base") == "random_base"
    assert feature_name("mfcc") == "mfcc"


def test_a_plus_b_concatenates_frame_by_frame(run):
    wav = torch.randn(8123)
    joined = featurizer(f"{run}+mfcc")(wav)
    model, mfcc = featurizer(str(run))(wav), featurizer("mfcc")(wav)
    assert joined.shape == (50, 64 + 39)
    assert torch.equal(joined, torch.cat([model, mfcc], dim=-1))
    assert torch.equal(featurizer("logmel+mfcc+logmel")(wav)[:, 119:], featurizer("logmel")(wav))
    with pytest.raises(ValueError, match="an empty part"):
        featurizer("mfcc+")
    assert feature_name(f"{run}+mfcc") == f"{run.name}+mfcc"


def test_a_plus_b_refuses_two_frame_grids(tmp_path):
    from cpc.eval.featurize import Featurizer, concatenated

    ten, twenty = Featurizer(lambda w: w, 16000, 160), Featurizer(lambda w: w, 16000, 320)
    with pytest.raises(ValueError, match=r"x\+y: its parts compute on different frame grids"):
        concatenated("x+y", [ten, twenty])
