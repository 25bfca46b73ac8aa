import dataclasses

import pytest

from nmt.config import (
    CHANGE_KINDS,
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    read_saved_config,
    resume_changes,
    save_config,
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
        ({"model": {"token_dropout": 1.0}}, r"model.token_dropout must be in \[0, 1\), got 1.0"),
        ({"model": {"token_dropout_start": -1}}, "model.token_dropout_start must be >= 0, got -1"),
        ({"decoding": {"beam_size": 2, "n_best": 3}}, "decoding.n_best must be between 1 and"),
        ({"data": {"train": [{"source": "a", "target": "b", "weight": 0}]}}, r"train\[0\].weight"),
        ({"data": {"train": [{"source": "a", "target": "b", "tag": "<a b>"}]}}, "one token"),
        (
            {
                "data": {
                    "train": [
                        {"source": "x/a.en", "target": "b"},
                        {"source": "y/a.fr", "target": "c"},
                    ]
                }
            },
            "different names",
        ),
        (
            {
                "data": {
                    "valid_source": "v",
                    "valid_target": "w",
                    "valid": [{"source": "a", "target": "b"}],
                }
            },
            "data.valid must be left out",
        ),
        # XLA fails deep inside TensorFlow on the LSTM loops: refused up front instead.
        ({"training": {"jit_compile": True}}, "training.jit_compile must be false: XLA cannot"),
        # Each worker would fit its own schedule from its own clock.
        (
            {
                "training": {
                    "fit_schedule_at": 100,
                    "max_steps": 1000,
                    "max_minutes": 5,
                    "distribution": "multi_worker",
                }
            },
            "training.fit_schedule_at must be 0 with training.distribution multi_worker",
        ),
    ],
)
def test_bad_values_name_key_and_value(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


@pytest.mark.parametrize(
    "training, fits",
    [
        ({"max_steps": 16000, "max_minutes": 60}, True),
        ({"max_steps": 16000, "max_minutes": 0}, False),  # the whole schedule, however long
        ({"max_steps": 30, "max_minutes": 60}, False),  # a smoke test ends before the fit
        ({"max_steps": 2000, "max_minutes": 60}, False),
        (
            {
                "max_steps": 16000,
                "max_minutes": 60,
                "distribution": "multi_worker",
                "fit_schedule_at": 0,
            },
            False,
        ),
    ],
)
def test_a_recipes_schedule_fit_gives_way_to_overrides_that_leave_nothing_to_fit(training, fits):
    """The recipes set fit_schedule_at: 2000; `--set training.max_minutes=0` or a short
    `max_steps` must run, not fail on a setting the user never wrote."""
    config = config_from_dict({"training": {"fit_schedule_at": 2000, **training}})
    assert config.training.fits_schedule is fits


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


def test_resume_changes_are_grouped_by_what_they_mean():
    old = config_from_dict({})

    def changed(section, **values):
        return dataclasses.replace(
            old, **{section: dataclasses.replace(getattr(old, section), **values)}
        )

    assert resume_changes(old, changed("model", hidden_size=128)).shape == [
        "model.hidden_size: 256 -> 128"
    ]
    assert resume_changes(old, changed("data", batch_size=32)).data_order == [
        "data.batch_size: 64 -> 32"
    ]
    assert resume_changes(old, changed("training", seed=7)).data_order == [
        "training.seed: 1234 -> 7"
    ]
    assert resume_changes(old, changed("model", param_init=0.1)).init == [
        "model.param_init: 0.0 -> 0.1"
    ]
    lower_dropout = resume_changes(old, changed("model", dropout=0.1))
    assert lower_dropout.shape == lower_dropout.data_order == []
    assert lower_dropout.free == ["model.dropout: 0.3 -> 0.1"]


def test_every_training_field_says_what_a_change_means_on_resume():
    for section in ("tokenizer", "data", "model", "training"):
        for f in dataclasses.fields(getattr(Config(), section)):
            assert f.metadata.get("change") in CHANGE_KINDS, f"{section}.{f.name}"


def test_a_saved_config_is_reusable_from_any_folder(tmp_path, monkeypatch):
    """Relative data paths (relative to the working directory) are saved absolute, so
    `nmt train --config RUN/config.yaml` finds the same files."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo" / "data").mkdir(parents=True)
    config = config_from_dict({"data": {"train_source": "runs/demo/data/train.en"}})
    save_config(config, tmp_path / "runs" / "demo" / "config.yaml")
    again = load_config(tmp_path / "runs" / "demo" / "config.yaml")
    assert again.data.train_source == str(tmp_path / "runs" / "demo" / "data" / "train.en")


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
