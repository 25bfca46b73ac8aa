import dataclasses

import pytest

from nmt.config import (
    ConfigError,
    config_from_dict,
    load_config,
    read_saved_config,
    save_config,
    shape_differences,
)


def test_unknown_key_is_rejected_with_its_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hiden_size: 12\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key model.hiden_size"):
        load_config(path)


def test_unknown_section_is_rejected():
    with pytest.raises(ConfigError, match="unknown config key modle"):
        config_from_dict({"modle": {}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"model": {"hidden_size": "big"}}, "model.hidden_size must be an integer, got 'big'"),
        ({"model": {"hidden_size": 0}}, "model.hidden_size must be positive, got 0"),
        ({"model": {"attention": "cosine"}}, "model.attention must be one of"),
        ({"model": {"input_feeding": "yes"}}, "model.input_feeding must be true or false"),
        ({"training": {"label_smoothing": 1.5}}, "training.label_smoothing must be in"),
        ({"decoding": {"beam_size": 2, "n_best": 3}}, "decoding.n_best must be between 1 and"),
    ],
)
def test_bad_values_name_key_and_value(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_overrides_use_dotted_names_and_yaml_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hidden_size: 12\ndata:\n  train_source: corpus/train.en\n")
    config = load_config(path, ["model.hidden_size=64", "model.input_feeding=false"])
    assert config.model.hidden_size == 64
    assert config.model.input_feeding is False
    # Relative data paths are resolved against the config file's folder.
    assert config.data.train_source == str(tmp_path / "corpus" / "train.en")
    with pytest.raises(ConfigError, match="unknown config key model.layers"):
        load_config(path, ["model.layers=4"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(path, ["hidden_size"])


def test_saved_config_round_trips(tmp_path):
    config = config_from_dict({"model": {"hidden_size": 64}, "training": {"seed": 7}})
    save_config(config, tmp_path / "config.yaml")
    assert read_saved_config(tmp_path / "config.yaml") == config


def test_shape_differences_name_the_fields():
    old = config_from_dict({})
    new = dataclasses.replace(old, model=dataclasses.replace(old.model, hidden_size=128))
    assert shape_differences(old, new) == ["model.hidden_size: 256 -> 128"]
    lower_dropout = dataclasses.replace(old, model=dataclasses.replace(old.model, dropout=0.1))
    assert shape_differences(old, lower_dropout) == []


def test_a_bad_override_is_blamed_on_set_not_on_the_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hidden_size: 12\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ["model.dropout=0.1", "model.hiden_size=3"])
    assert str(error.value).startswith(
        "--set model.hiden_size=3: unknown config key model.hiden_size"
    )
    with pytest.raises(ConfigError, match=r"^--set model\.dropout=x: model\.dropout"):
        load_config(path, ["model.dropout=x"])
    path.write_text("model:\n  hiden_size: 12\n")
    with pytest.raises(ConfigError, match=f"^{path}: unknown config key model.hiden_size"):
        load_config(path, ["model.dropout=0.1"])
