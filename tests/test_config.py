"""Configurations: JSON round trip, stable keys, modifications and the Table 6 rows."""

import json
import subprocess
import sys

import pytest

from pneumobench.experiment.config import (
    ConfigError,
    ExperimentConfig,
    ModelConfig,
    StageConfig,
    config_name,
)
from pneumobench.papers.viel_orhan_2020.modifications import (
    MODIFICATIONS,
    PAPER_MODIFICATIONS,
    modification,
    table6_rows,
)


def test_paper_baseline_matches_table_1():
    config = ExperimentConfig.paper_baseline()
    assert config.batch_size == 32 and config.seg_loss == "bce" and config.image_size == 256
    assert config.model.encoder == "resnet34" and config.model.encoder_weights == "imagenet"
    assert config.stages == (
        StageConfig(epochs=3, lr=5e-4, min_lr=1e-4, freeze_encoder=True),
        StageConfig(epochs=40, lr=5e-4, min_lr=5e-5, freeze_encoder=False),
    )
    assert config.epochs == 43 and config.name == "baseline"


@pytest.mark.parametrize("row", table6_rows(), ids=config_name)
def test_json_round_trip_of_every_table6_row(row):
    config = ExperimentConfig.paper_baseline().with_modifications(*row)
    again = ExperimentConfig.from_json(config.to_json())
    assert again == config and again.key() == config.key()


def test_key_is_stable_across_processes():
    config = ExperimentConfig.paper_baseline().with_modifications("aspp", "scse")
    code = (
        "from pneumobench.experiment.config import ExperimentConfig;"
        "print(ExperimentConfig.paper_baseline().with_modifications('scse', 'aspp').key())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == config.key()


def test_keys_differ_between_configurations():
    keys = {ExperimentConfig().with_modifications(*row).key() for row in table6_rows()}
    assert len(keys) == 16
    assert ExperimentConfig().key() != ExperimentConfig(batch_size=16).key()


def test_modifications_change_what_the_paper_says():
    base = ExperimentConfig.paper_baseline()
    assert base.with_modifications("lovasz").seg_loss == "lovasz"
    assert base.with_modifications("aspp").model.center == "aspp"
    assert base.with_modifications("hypercolumns").model.hypercolumns
    assert base.with_modifications("scse").model.attention == "scse"
    both = base.with_modifications("scse", "lovasz", "scse")
    assert both.modifications == ("lovasz", "scse") and both.name == "lovasz+scse"
    assert both == base.with_modifications("lovasz").with_modifications("scse")


def test_table6_rows_are_the_papers_order():
    rows = table6_rows()
    assert len(rows) == 16 and len(set(rows)) == 16
    assert rows[0] == () and rows[-1] == PAPER_MODIFICATIONS
    assert rows[5] == ("lovasz", "aspp") and rows[8] == ("aspp", "hypercolumns")
    assert rows[14] == ("aspp", "hypercolumns", "scse")


def test_unknown_modification_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown modification 'asp'; registered: aspp, hypercolumns"):
        ExperimentConfig().with_modifications("asp")


def test_new_modification_is_a_decorated_function():
    @modification("tiny_batch")
    def tiny_batch(config):
        return config.replace(batch_size=4)

    try:
        config = ExperimentConfig().with_modifications("tiny_batch", "aspp")
        assert config.batch_size == 4 and config.modifications == ("aspp", "tiny_batch")
    finally:
        MODIFICATIONS.unregister("tiny_batch")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(batch=3), "config: unknown field(s) batch"),
        (lambda d: d["model"].update(encoder_weights=3), "config.model.encoder_weights: 3 matches none"),
        (lambda d: d["model"].update(center=3), "config.model.center: expected str, got 3"),
        (lambda d: d.update(batch_size="32"), "config.batch_size: expected int"),
        (lambda d: d["stages"][1].pop("lr"), "config.stages[1]"),
        (lambda d: d["model"].update(aspp_rates=[6, 12]), "config.model.aspp_rates: expected 3 items"),
        (lambda d: d.update(model=[]), "config.model: expected an object"),
    ],
)
def test_from_dict_names_the_bad_field(mutate, message):
    data = json.loads(ExperimentConfig().to_json())
    mutate(data)
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict(data)
    assert message in str(info.value)


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        ExperimentConfig().batch_size = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ModelConfig().center = "aspp"  # type: ignore[misc]


def test_validate_every_enters_the_key_only_off_its_default_and_best_epoch_rules_need_every_epoch():
    base = ExperimentConfig.paper_baseline()
    assert base.replace(validate_every=1).key() == base.key() and base.replace(validate_every=3).key() != base.key()
    with pytest.raises(ConfigError, match="validate_every: 0 is not a positive count"):
        base.replace(validate_every=0)
    with pytest.raises(ConfigError, match="picks the best epoch and needs every epoch validated"):
        base.replace(epoch_selection="best-val", validate_every=3)


def test_attention_reduction_enters_the_key_only_when_set_and_must_be_positive():
    base = ExperimentConfig.paper_baseline()
    assert base.replace_model(attention_reduction=None).key() == base.key()
    assert base.replace_model(attention_reduction=4).key() != base.key()
    with pytest.raises(ConfigError, match="attention_reduction: 0 is not a positive ratio"):
        base.replace_model(attention_reduction=0)
