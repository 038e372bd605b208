"""torch.hub entry points: `torch.hub.load(repo_dir, "cpc_shipped", source="local")` returns the small checkpoint
this repository ships (recipes/demo/cpc_shipped.pt) ready in eval mode, as `cpc.load` does; `cpc_small`,
`cpc_base` and `cpc_paper` build the preset architectures with random weights. Nothing is downloaded."""

from pathlib import Path

dependencies = ["torch", "torchaudio", "einops", "numpy", "yaml"]

SHIPPED = Path(__file__).resolve().parent / "recipes" / "demo" / "cpc_shipped.pt"


def cpc_shipped(device: str = "cpu"):
    """The shipped CPC checkpoint (128-channel encoder, GRU 256, 16 kHz), trained, in eval mode on `device`."""
    import cpc

    return cpc.load(SHIPPED, device=device)


def cpc_small():
    """The small preset (64 channels, BatchNorm, GRU 64, K = 4), random init: for tests and CPU demos."""
    from cpc.models import cpc_small as build

    return build()


def cpc_base():
    """CPC_audio's defaults (256 channels, channel norm, LSTM 256, Transformer predictor, K = 12), random init."""
    from cpc.models import cpc_base as build

    return build()


def cpc_paper():
    """Oord et al. 2018 (512 channels, BatchNorm, GRU 256, linear W_k, K = 12), random init."""
    from cpc.models import cpc_paper as build

    return build()
