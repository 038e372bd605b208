import pytest

from cpc.config import ConfigError, load, parse_overrides
from cpc.recipe import PretrainConfig


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="--set takes key=value"):
        parse_overrides(["optim.lr"])
    with pytest.raises(ConfigError, match="config file .*missing.yaml does not exist"):
        load(PretrainConfig, tmp_path / "missing.yaml")


