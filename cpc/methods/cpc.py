"""The CPC objective: multi-step InfoNCE on (g_enc, g_ar, W_k), optionally plus predictive-coding regression."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from cpc.config import Rules
from cpc.errors import UserError
from cpc.losses.infonce import InfoNCEConfig, chance_loss, info_nce, sample_negatives
from cpc.losses.predictive import REGRESSION_LOSSES, predictive_coding_loss
from cpc.methods.base import Method
from cpc.models.cpc import CPCModel, CPCModelConfig, cpc_base_config, model_preset
from cpc.models.inputs import adapter_class

# The negatives each named preset draws per position (its model comes from cpc.models.cpc.MODEL_PRESETS).
PRESET_NEGATIVES = {"paper": 128, "base": 128, "small": 32, "logmel": 128, "video": 64}


@dataclass
class CPCConfig:
    model: CPCModelConfig = field(default_factory=cpc_base_config)
    infonce: InfoNCEConfig = field(default_factory=InfoNCEConfig)
    infonce_weight: float = 1.0
    regression_loss: str = "mse"  # used when model.regression_target is not "none"
    regression_weight: float = 1.0
    # Warn when the InfoNCE loss is still within `chance_margin` of ln(N + 1) this many steps into training.
    chance_check_after: int = 500
    chance_margin: float = 0.05

    def check(self, rules: Rules, data: Rules) -> None:
        """A ConfigError for the first setting of this section (`rules`, e.g. cpc) that cannot work, and for a data
        window (`data`) that cannot hold what it must: whole model frames, at least K + 1 of them."""
        self.model.check(rules.within("model"))
        self.infonce.check(rules.within("infonce"))
        rules.one_of("regression_loss", REGRESSION_LOSSES)
        model, window = self.model, data.value("window")
        steps, too_short = model.predictor.steps, [data.key("window"), rules.key("model.predictor.steps")]
        if model.modality == "video":
            if window < steps + 1:
                rules.fail(too_short, f"{data.key('window')} {window} frames is too short for K = {steps} prediction "
                           f"steps ({rules.key('model.predictor.steps')})",
                           f"use a window of at least {steps + 1} frames, or a smaller K")
            return
        hop = model.hop
        if window < 1 or window % hop:
            lower, upper = max(hop, window // hop * hop), (window // hop + 1) * hop
            hop_rule = adapter_class(model).hop_rule.format(model=rules.key("model."))
            rules.fail([data.key("window")], f"{data.key('window')} {window} must be a multiple of the model's hop "
                       f"{hop}", f"use {lower} or {upper} samples (the hop is {hop_rule})")
        if window // hop < steps + 1:
            rules.fail(too_short, f"{data.key('window')} {window} holds {window // hop} frames of {hop} samples, too "
                       f"few for K = {steps} prediction steps ({rules.key('model.predictor.steps')})",
                       f"use a window of at least {(steps + 1) * hop} samples ({steps + 1} frames), or a smaller K")


def cpc_preset(name: str) -> CPCConfig:
    """Full CPC setups by name: "paper" (Oord et al.), "base" (CPC_audio-like), "small" (tests, CPU demos),
    "logmel" (the log-mel front end, sized as the shipped demo model), "video" (frame sequences such as moving
    digits): the preset's model (cpc.models.cpc.model_preset) with its negatives drawn from the whole batch."""
    return CPCConfig(model=model_preset(name), infonce=InfoNCEConfig(negatives=PRESET_NEGATIVES[name], policy="batch"))


class ChanceWatch:
    """Warns once if a loss averaged over a window of steps still sits at its chance level after `after` steps."""

    def __init__(self, chance: float, after: int, margin: float, window: int = 50):
        self.chance, self.after, self.margin, self.window = chance, after, margin, window
        self.recent: list[torch.Tensor] = []
        self.warned = False

    def record(self, loss: torch.Tensor) -> None:
        if not self.warned:
            self.recent = (self.recent + [loss.detach()])[-self.window :]

    def check(self, step: int) -> bool:
        """True (and one warning) the first time the windowed loss is at chance once `step` >= after."""
        if self.warned or step < self.after or len(self.recent) < self.window:
            return False
        mean = torch.stack(self.recent).mean().item()  # one host sync per check, not per step
        self.recent = []
        if mean < self.chance - self.margin:
            return False
        self.warned = True
        warnings.warn(
            f"InfoNCE loss {mean:.3f} is still at chance (ln(N+1) = {self.chance:.3f}) after {step} steps: "
            "check that inputs are standardised, that scores are scaled (temperature / scale_by_dim) and that "
            "the learning rate warms up",
            RuntimeWarning,
            stacklevel=2,
        )
        return True


class NoSpeakers(UserError):
    """Same-speaker negatives asked for, on data whose sequences carry no speaker labels."""


def check_speakers(names: list[str] | None, keys: list[str]) -> None:
    """NoSpeakers when not one sequence of the batch names its speaker: `same_speaker` would silently draw from
    the whole batch. (Names reach the batch as collate's "speaker_name"; an empty name is no speaker.)"""
    if names is not None and not any(names):
        shown = ", ".join(keys[:3]) + (" ..." if len(keys) > 3 else "")
        raise NoSpeakers(f"cpc.infonce.policy 'same_speaker' needs speaker labels, but none of the batch's "
                         f"{len(names)} sequences has one ({shown}): write the shards with speakers (`cpc shards` "
                         "takes them from folder names, see --speaker-level, or a manifest's speaker column), or "
                         "set cpc.infonce.policy=batch")


class CPCMethod(Method):
    """batch {"wav": (B, samples)} (audio) or {"frames": (B, T, H, W, C) uint8} (video) -- the field the model's
    input adapter names, with the augmented other version in the one it names as its target field --, optional
    "speaker": (B,) -> loss and logs (per-k InfoNCE loss and accuracy)."""

    exported = "model"

    @classmethod
    def data_kind(cls, config: CPCConfig) -> str:
        return config.model.modality

    @classmethod
    def stream_options(cls, config: CPCConfig) -> dict[str, Any]:
        """Audio is read at the model's sample rate and cut at its frame hop."""
        model = config.model
        return dict(sample_rate=model.sample_rate, hop=model.hop) if model.modality == "audio" else {}

    def __init__(self, config: CPCConfig = CPCConfig()):
        super().__init__()
        self.config = config
        self.model = CPCModel(config.model)
        self.use_infonce = config.infonce_weight > 0
        if self.use_infonce and self.model.predictor is None:
            raise ValueError("infonce_weight > 0 needs prediction heads: set model.predictor.kind, or infonce_weight: 0")
        if not self.use_infonce and self.model.regressor is None:
            raise ValueError("nothing to train: infonce_weight is 0 and model.regression_target is 'none'")
        if not self.use_infonce and self.model.predictor is not None:
            # Unused by the loss: frozen, so DDP does not wait for gradients that never come.
            self.model.predictor.requires_grad_(False)
        self.chance = ChanceWatch(
            chance_loss(config.infonce.negatives), config.chance_check_after, config.chance_margin
        )

    def training_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model, inputs = self.model, self.model.inputs
        if inputs.input_key not in batch:
            raise ValueError(f"this CPC model ({model.config.modality}) reads batch[{inputs.input_key!r}]; "
                             f"the batch has {sorted(batch)}")
        x = batch[inputs.input_key]
        model.check_input(x)
        if x.shape[1] < model.min_training_samples():
            unit = inputs.unit if model.hop == 1 else f"{inputs.unit} ({model.steps + 1} frames of {model.hop})"
            raise ValueError(
                f"K = {model.steps} prediction steps need at least {model.min_training_samples()} {unit}; "
                f"got {x.shape[1]}"
            )
        target = batch.get(inputs.target_key) if inputs.target_key else None  # the other version, if augmented
        out = self.model(x, target)
        valid = batch.get("valid")  # lockstep validation's padding rows weigh 0
        if valid is not None and model.cells > 1:
            valid = valid.repeat_interleave(model.cells)
        loss = out["z"].new_zeros((), dtype=torch.float32)
        logs: dict[str, torch.Tensor] = {}
        if self.use_infonce:
            z = out["z"]
            cfg = self.config.infonce
            speakers = batch.get("speaker")
            if cfg.policy == "same_speaker":
                check_speakers(batch.get("speaker_name"), batch.get("key", []))
            if speakers is not None and model.cells > 1:  # every grid cell of a clip is its own sequence
                speakers = speakers.repeat_interleave(model.cells)
            negative_idx = sample_negatives(
                cfg.policy, z.shape[0], z.shape[1], z.shape[1] - model.steps, cfg.negatives,
                speakers=speakers, device=z.device, valid=valid,
            )
            def score(pred: torch.Tensor, frames: torch.Tensor):
                return info_nce(pred, frames, negative_idx, cfg.temperature, cfg.scale_by_dim, cfg.exclude_positive,
                                weights=valid)

            nce = score(out["pred"], z)
            loss = loss + self.config.infonce_weight * nce.loss
            self.chance.record(nce.loss)
            logs["infonce"] = nce.loss.detach()
            logs["accuracy"] = nce.accuracy_per_step.mean().detach()
            for k, (step_loss, step_acc) in enumerate(zip(nce.loss_per_step, nce.accuracy_per_step), start=1):
                logs[f"loss_k{k}"] = step_loss.detach()
                logs[f"accuracy_k{k}"] = step_acc.detach()
            if "pred_reverse" in out:  # the reverse g_ar predicts the frames before each position: z in reverse
                # time; the same negative draw serves (every policy's pool is symmetric in time)
                reverse = score(out["pred_reverse"], z.flip(1))
                loss = loss + self.config.infonce_weight * reverse.loss
                logs["infonce_reverse"] = reverse.loss.detach()
                logs["accuracy_reverse"] = reverse.accuracy_per_step.mean().detach()
        if self.model.regressor is not None:
            regression, _ = predictive_coding_loss(
                out["regression"], out["regression_target"], self.config.regression_loss, weights=valid
            )
            loss = loss + self.config.regression_weight * regression
            logs["regression"] = regression.detach()
        logs["loss"] = loss.detach()
        return loss, logs

    def throughput(self, batch: dict[str, Any]) -> tuple[float, str]:
        return self.model.inputs.throughput(batch[self.model.inputs.input_key])

    def on_after_step(self, step: int) -> None:
        if self.use_infonce:
            self.chance.check(step)
