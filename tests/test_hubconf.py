"""hubconf.py: torch.hub loads the shipped checkpoint and the preset builders from the repository folder, offline."""

from pathlib import Path

import torch

import cpc
from cpc.eval.features import extract
from cpc.models.cpc import cpc_base_config, cpc_paper_config, cpc_small_config

REPO = Path(__file__).resolve().parents[1]


def test_hub_shipped_model_gives_the_features_of_cpc_load():
    hub = torch.hub.load(str(REPO), "cpc_shipped", source="local")
    direct = cpc.load(REPO / "recipes" / "demo" / "cpc_shipped.pt")
    assert not hub.training and hub.config == direct.config
    wav = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    torch.testing.assert_close(extract(hub, wav), extract(direct, wav), rtol=0, atol=0)


def test_hub_builds_the_presets_with_random_weights():
    for name, config in (("cpc_small", cpc_small_config()), ("cpc_base", cpc_base_config()),
                         ("cpc_paper", cpc_paper_config())):
        assert torch.hub.load(str(REPO), name, source="local").config == config
