import pytest

from cpc.config import ConfigError, load, parse_overrides
from cpc.recipe import PretrainConfig


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="--set takes key=value"):
        parse_overrides(["optim.lr"])
    with pytest.raises(ConfigError, match="config file .*missing.yaml does not exist"):
        load(PretrainConfig, tmp_path / "missing.yaml")




def test_null_turns_off_text_lists_and_optional_settings_and_is_refused_elsewhere(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("val_shards: held/out\ndata: {mix: [a=1, b=2], num_workers: 2}\noptim: {grad_clip: 1.0}\n"
                      "train: {out:}\n")  # an empty YAML value is null too
    config = load(PretrainConfig, recipe, ["val_shards=null", "data.mix=null", "data.num_workers=null",
                                           "optim.grad_clip=null"])
    assert (config.val_shards, config.data.mix, config.data.num_workers, config.optim.grad_clip) == ("", [], None,
                                                                                                     None)
    assert config.train.out == ""  # text: empty (recipe.check then asks for a folder)
    for key, kind in (("train.steps", "int"), ("train.compile", "bool"), ("optim.lr", "float")):
        with pytest.raises(ConfigError, match=rf"^{key}: expected {kind}, got null \(null turns off only optional "
                                              r"settings: text, lists and the ones that take null\)$"):
            load(PretrainConfig, None, [f"{key}=null"])
