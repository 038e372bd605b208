import pytest
import torch

from cpc.config import ConfigError
from cpc.methods import METHODS, BYOL, CPCMethod, MoCo
from cpc.recipe import build_method, data_kind, data_loader, load_config, pretrain

SAMPLE = "datasets/synthetic_speech/sample"


def test_yaml_and_overrides_fill_nested_dataclasses(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("cpc_preset: paper\ncpc:\n  infonce: {negatives: 64}\noptim: {lr: 1e-3}\n")
    config = load_config(recipe, ["data.batch_size=16", "cpc.model.encoder.kernels=[10, 8, 4, 4, 2]", "optim.betas=[0.8, 0.9]"])
    assert config.cpc.model.encoder.channels == 512  # from the paper preset
    assert config.cpc.infonce.negatives == 64 and config.optim.lr == 1e-3 and config.data.batch_size == 16
    assert config.cpc.model.encoder.kernels == (10, 8, 4, 4, 2) and config.optim.betas == (0.8, 0.9)


def test_unknown_key_names_the_key_and_the_valid_choices():
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.learning_rate'; valid keys here: name, lr, "):
        load_config(overrides=["optim.learning_rate=1"])
    with pytest.raises(ConfigError, match=r"unknown config key 'cpc.model.encoder.chanels'.*channels"):
        load_config(overrides=["cpc.model.encoder.chanels=3"])


def test_wrong_type_names_key_expected_type_and_value():
    with pytest.raises(ConfigError, match=r"data.batch_size: expected int, got 'eight' \(str\)"):
        load_config(overrides=["data.batch_size=eight"])
    with pytest.raises(ConfigError, match=r"train.steps: expected int, got 1.5"):
        load_config(overrides=["train.steps=1.5"])
    with pytest.raises(ConfigError, match=r"optim.grad_clip: 'big' is not"):
        load_config(overrides=["optim.grad_clip=big"])


def test_missing_data_path_is_one_clear_error(tmp_path):
    config = load_config(overrides=[f"data.shards={tmp_path}/nope-{{0..3}}.tar", f"train.out={tmp_path}/run"])
    with pytest.raises(FileNotFoundError, match=r"4 shard\(s\) not found, first: .*nope-0.tar"):
        pretrain(config)


def test_the_data_section_follows_the_method():
    from cpc.data.images import ImageDataConfig
    from cpc.data.video import VideoDataConfig

    config = load_config(overrides=["method=byol", "data.size=28", "byol.tau_base=0.996"])
    assert isinstance(config.data, ImageDataConfig) and config.data.size == 28 and config.byol.tau_base == 0.996
    assert isinstance(load_config(overrides=["cpc_preset=video"]).data, VideoDataConfig)
    with pytest.raises(ConfigError, match="unknown config key 'data.window'"):
        load_config(overrides=["method=simclr", "data.window=5"])


def test_cli_reports_config_errors_without_a_traceback(capsys):
    from cpc.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["pretrain", "recipes/demo/cpc.yaml", "--set", "train.stepz=3"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("cpc pretrain: unknown config key 'train.stepz'; valid keys here: steps, out,")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_method_names_the_registry():
    with pytest.raises(ConfigError, match=r"unknown method 'dino'; choose one of \['barlow_twins', 'byol', 'cpc'"):
        load_config(overrides=["method=dino"])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_builds_from_its_section(name):
    config = load_config(overrides=[f"method={name}"])
    method = build_method(config)
    assert isinstance(method, METHODS[name].method)
    assert data_kind(config) == ("audio" if name == "cpc" else "images")
    if isinstance(method, BYOL):
        assert method.config.total_steps == config.train.steps  # the schedule spans the run by default
    assert bool(method.momentum_pairs()) == isinstance(method, (BYOL, MoCo))


@pytest.mark.parametrize("workers", [0, 2])
def test_the_configured_worker_count_reaches_the_dataloader(workers):
    config = load_config("recipes/demo/cpc.yaml", [f"data.num_workers={workers}"])
    loader = data_loader(config, config.data.shards, train=True)
    assert isinstance(loader, torch.utils.data.DataLoader) and loader.num_workers == workers


def test_audio_is_read_at_the_models_rate_and_hop(tmp_path):
    config = load_config("recipes/demo/cpc.yaml", ["data.window=3200", "cpc.model.encoder.strides=[5, 4, 2, 2, 4]"])
    assert config.cpc.model.hop == 320
    batch = next(iter(data_loader(config, config.data.shards, train=True)))
    assert batch["wav"].shape == (8, 3200) and batch["labels"].shape == (8, 20)  # labels stay at 10 ms
    with pytest.raises(ValueError, match="window 3000 must be a multiple of the model's hop 160"):
        data_loader(load_config("recipes/demo/cpc.yaml", ["data.window=3000"]), config.data.shards, train=True)
    rated = load_config("recipes/demo/cpc.yaml", ["cpc.model.sample_rate=8000"])
    stream = data_loader(rated, config.data.shards, train=False)
    assert next(iter(stream), None) is None  # every 16 kHz utterance skipped: the model reads 8 kHz


def test_a_setting_that_cannot_work_names_where_it_was_set(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("cpc_preset: small\ndata: {window: 3000}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(recipe)
    assert str(caught.value) == (f"data.window 3000 must be a multiple of the model's hop 160 ({recipe}): use 2880 or "
                                 "3040 samples (the hop is the product of cpc.model.encoder.strides)")
    with pytest.raises(ConfigError) as caught:  # K comes from the preset, the window from the recipe
        load_config(recipe, ["data.window=640"])
    assert "(--set data.window=640, cpc_preset 'small'): use a window of at least 800 samples" in str(caught.value)


def test_group_source_needs_a_mixture(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("cpc_preset: small\ndata: {shards: datasets/synthetic_speech/sample/train}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(recipe, ["data.group=source"])
    assert str(caught.value).startswith("data.group 'source' builds each batch from one corpus of data.mix, but there "
                                        "is no data.mix (--set data.group=source): give data.mix")


def test_the_logmel_front_end_is_checked_like_the_raw_audio_one(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("cpc_preset: logmel\ndata: {window: 3200}\n")
    config = load_config(recipe)
    assert (config.cpc.model.frontend, config.cpc.model.hop) == ("logmel", 160)
    with pytest.raises(ConfigError) as caught:
        load_config(recipe, ["cpc.model.input_norm=window"])
    assert str(caught.value).startswith("frontend 'logmel' standardises log-mel frames with running statistics")
    assert str(caught.value).endswith("(cpc_preset 'logmel'): set input_norm to 'causal'")
    with pytest.raises(ConfigError, match=r"unknown cpc.model.frontend 'mel' \(--set cpc.model.frontend=mel\): "
                                          "choose one of waveform, logmel"):
        load_config(recipe, ["cpc.model.frontend=mel"])
    with pytest.raises(ConfigError, match=r"use 3200 or 3520 samples \(the hop is cpc.model.logmel.hop times the "
                                          r"product of cpc.model.encoder.strides\)"):
        load_config(recipe, ["cpc.model.encoder.strides=[1,2,1]", "data.window=3300"])


def test_an_empty_train_out_is_refused_instead_of_training_into_the_working_directory():
    with pytest.raises(ConfigError, match=r"^train.out is empty \(--set train.out=null\): name the run's folder, e.g. "
                                          r"--set train.out=runs/my_run$"):
        load_config("recipes/demo/cpc.yaml", ["train.out=null"])
