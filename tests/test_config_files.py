"""The list and optional-field parsing that the RL and predictor configs share (experiments.config_files)."""

from __future__ import annotations

import pytest

from experiments.config_files import coerce_field
from experiments.predictor_config import PredictorConfig
from experiments.rl_config import RLConfig


def _int(name: str, hint: object, value: object) -> int:
    return int(str(value))


@pytest.mark.parametrize(
    "value", ["1,5,20", "[1, 5, 20]", " 1 , 5 ,20 ", "1;5;20", [1, 5, 20], (1, "5", 20)]
)
def test_list_fields_read_text_brackets_semicolons_and_sequences_alike(value: object) -> None:
    assert coerce_field("horizons", tuple[int, ...], value, _int) == (1, 5, 20)


def test_a_single_value_is_a_one_item_list() -> None:
    assert coerce_field("horizons", tuple[int, ...], 5, _int) == (5,)


@pytest.mark.parametrize("value", [None, "none", "NULL", ""])
def test_optional_fields_read_none_null_and_empty_as_none(value: object) -> None:
    assert coerce_field("step", int | None, value, _int) is None


def test_semicolons_separate_items_that_contain_commas_in_both_configs() -> None:
    specs = "synthetic:seed=1,n_days=300;synthetic:seed=2"
    assert RLConfig(extra_train_data=specs).extra_train_data == ("synthetic:seed=1,n_days=300", "synthetic:seed=2")
    assert PredictorConfig(symbols="AAA;BBB").symbols == ("AAA", "BBB")


def test_both_configs_read_bracketed_lists_from_text() -> None:
    assert RLConfig(net_arch="[32, 16]").net_arch == (32, 16)
    assert PredictorConfig(horizons="[1, 5]", horizon=5).horizons == (1, 5)
