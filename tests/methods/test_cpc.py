import random
import warnings

import numpy as np
import pytest
import torch

from cpc.data.synthetic import sinusoid_batch
from cpc.losses import InfoNCEConfig, chance_loss
from cpc.methods import CPCConfig, CPCMethod, cpc_preset
from cpc.methods.cpc import ChanceWatch
from cpc.models.autoregressive import AutoregressiveConfig
from cpc.models.cpc import CPCModelConfig
from cpc.models.encoders import ConvEncoderConfig
from cpc.models.heads import PredictorConfig


def tiny_config(policy="batch", **changes) -> CPCConfig:
    model = CPCModelConfig(
        encoder=ConvEncoderConfig(channels=32, norm="channel"),
        ar=AutoregressiveConfig(kind="gru", dim=32),
        predictor=PredictorConfig(steps=3),
    )
    return CPCConfig(model=model, infonce=InfoNCEConfig(negatives=16, policy=policy), **changes)


def train(method, steps, lr=2e-3, samples=4800):
    optimiser = torch.optim.Adam(method.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    history = []
    for _ in range(steps):
        loss, logs = method.training_step({"wav": sinusoid_batch(8, samples, generator=g)})
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append({k: float(v) for k, v in logs.items()})
    return history


@pytest.mark.parametrize("policy", ["batch", "same_sequence"])
def test_learns_toy_sinusoids_well_above_chance(policy):
    history = train(CPCMethod(tiny_config(policy)), steps=300)
    chance_accuracy = 1 / 17
    late = history[-30:]
    accuracy = sum(h["accuracy"] for h in late) / len(late)
    loss = sum(h["infonce"] for h in late) / len(late)
    assert history[0]["infonce"] == pytest.approx(chance_loss(16), abs=0.1)
    assert accuracy > 4 * chance_accuracy, accuracy
    assert loss < chance_loss(16) - 0.5, loss


def test_regression_alone_reduces_its_loss():
    config = tiny_config(infonce_weight=0.0)
    config.model.regression_target = "logmel"
    config.model.predictor.kind = "none"
    history = train(CPCMethod(config), steps=60, lr=3e-3)
    assert "infonce" not in history[0]
    assert sum(h["regression"] for h in history[-10:]) < 0.5 * sum(h["regression"] for h in history[:10])


def test_logs_per_step_loss_and_accuracy():
    method = CPCMethod(tiny_config())
    loss, logs = method.training_step({"wav": torch.randn(2, 3200)})
    assert {"loss", "infonce", "accuracy", "loss_k1", "loss_k3", "accuracy_k3"} <= set(logs)
    assert loss.requires_grad and not logs["loss"].requires_grad


def test_same_speaker_uses_speaker_ids():
    method = CPCMethod(tiny_config("same_speaker"))
    loss, _ = method.training_step({"wav": torch.randn(4, 3200), "speaker": torch.tensor([1, 1, 2, 2])})
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="same_speaker"):
        method.training_step({"wav": torch.randn(4, 3200)})


def test_warns_when_stuck_at_chance():
    method = CPCMethod(tiny_config(chance_check_after=50))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 61):  # no optimiser: the loss stays at chance
            with torch.no_grad():
                method.training_step({"wav": torch.randn(2, 3200)})
            method.after_optimiser_step(step)
    stuck = [w for w in caught if "still at chance" in str(w.message)]
    assert len(stuck) == 1


def test_chance_watch_quiet_when_learning():
    watch = ChanceWatch(chance=4.0, after=10, margin=0.05, window=5)
    for step in range(1, 30):
        watch.record(torch.tensor(2.0))
        assert not watch.check(step)


def test_bad_inputs():
    method = CPCMethod(tiny_config())
    with pytest.raises(ValueError, match=r"need at least 640 samples \(4 frames of 160\); got 500"):
        method.training_step({"wav": torch.randn(2, 500)})
    with pytest.raises(ValueError, match=r"expects a waveform of shape \(batch, samples\); got shape \(2, 1, 5000\)"):
        method.training_step({"wav": torch.randn(2, 1, 5000)})
    with pytest.raises(ValueError, match=r"reads batch\['wav'\]; the batch has \['frames'\]"):
        method.training_step({"frames": torch.zeros(2, 8, 16, 16, 1, dtype=torch.uint8)})
    with pytest.raises(ValueError, match="unknown CPC preset 'huge'"):
        cpc_preset("huge")
    config = tiny_config(infonce_weight=0.0)
    with pytest.raises(ValueError, match="nothing to train"):
        CPCMethod(config)


def test_param_groups_keep_norms_and_biases_out_of_weight_decay():
    method = CPCMethod(tiny_config())
    decay, no_decay = method.param_groups(weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decay["params"]) and all(p.dim() <= 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(method.parameters()))


def test_bidirectional_trains_both_directions_above_chance():
    config = tiny_config("same_sequence")
    config.model.bidirectional = True
    history = train(CPCMethod(config), steps=300)
    late = history[-30:]
    for direction in ("accuracy", "accuracy_reverse"):
        assert sum(h[direction] for h in late) / len(late) > 4 / 17, direction
    assert history[0]["infonce_reverse"] == pytest.approx(chance_loss(16), abs=0.1)


def test_each_input_kind_reads_the_fields_its_stream_writes():
    from cpc.data.audio import FIELD, TARGET_FIELD, AudioDataConfig, audio_stream
    from cpc.data.augment import AugmentConfig, Augmenter, augment_items

    stream = audio_stream(AudioDataConfig(shards="datasets/synthetic_speech/sample/train"), train=True,
                          sample_rate=16000, hop=160)
    assert (stream.field, stream.target_field) == (FIELD, TARGET_FIELD)
    window = {"key": "u", FIELD: np.zeros(3200, dtype=np.float32)}
    augmented = next(augment_items(iter([window]), FIELD, TARGET_FIELD, Augmenter(AugmentConfig(past=True)),
                                   random.Random(0)))
    for preset in ("small", "logmel"):
        inputs = CPCMethod(cpc_preset(preset)).model.inputs
        assert set(augmented) == {"key", inputs.input_key, inputs.target_key}


def test_logmel_preset_trains_with_augmented_targets():
    config = cpc_preset("logmel")
    assert config.infonce.negatives == 128 and config.model.frontend == "logmel"
    config.model.encoder.channels, config.model.ar.dim, config.model.predictor.steps = 32, 32, 3
    config.infonce.negatives = 16
    method = CPCMethod(config)
    g = torch.Generator().manual_seed(0)
    clean = sinusoid_batch(8, 3200, generator=g)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=g)
    loss, logs = method.training_step({"wav": noisy, "wav_future": clean})
    loss.backward()
    assert torch.isfinite(loss) and 0 <= float(logs["accuracy"]) <= 1
    assert all(p.grad is not None for p in method.model.encoder.parameters())
    assert method.throughput({"wav": noisy}) == (8 * 3200 / 16000, "audio-s")
    with pytest.raises(ValueError, match=r"need at least 640 samples \(4 frames of 160\); got 500"):
        method.training_step({"wav": torch.randn(2, 500)})
