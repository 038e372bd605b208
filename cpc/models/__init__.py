"""nn.Modules only: encoders g_enc, autoregressive models g_ar, prediction heads and the CPC model."""

from cpc.models.autoregressive import AutoregressiveConfig, build_autoregressive
from cpc.models.cpc import (
    CPCModel,
    CPCModelConfig,
    cpc_base,
    cpc_base_config,
    cpc_logmel,
    cpc_logmel_config,
    cpc_paper,
    cpc_paper_config,
    cpc_small,
    cpc_small_config,
    cpc_video_config,
    model_preset,
)
from cpc.models.encoders import (ConvEncoder, ConvEncoderConfig, FrameEncoder, FrameEncoderConfig, ImageEncoder,
                                 ImageEncoderConfig, LogMelFrames, standardize)
from cpc.models.heads import PredictionHeads, PredictorConfig
from cpc.models.inputs import INPUT_KINDS, InputAdapter, LogMelConfig, input_adapter
