"""Fault battery: ``--set`` values are used as given or refused naming the key, never coerced."""

from __future__ import annotations

import pytest

from realtime.config import load_config
from realtime.live.smoothing import SmoothingConfig
from training.config import TrainConfig


@pytest.mark.parametrize("value", ["2.5", "true", "nan", "two"])
def test_int_key_refuses_what_is_not_an_integer(value):
    """Before: ``--set optim.epochs=2.5`` trained 2 epochs, ``=true`` trained 1."""
    with pytest.raises(ValueError, match=r"config key 'optim.epochs': expected (an integer|int)"):
        load_config(TrainConfig, overrides=[f"optim.epochs={value}"])


def test_int_key_takes_whole_numbers():
    assert load_config(TrainConfig, overrides=["optim.epochs=3"]).optim.epochs == 3
    assert load_config(TrainConfig, overrides=["optim.epochs=3.0"]).optim.epochs == 3


@pytest.mark.parametrize("value", ["nan", "yes"])
def test_float_key_refuses_nan_and_booleans(value):
    """Before: ``--set beta=nan`` was accepted; ``=yes`` became 1.0."""
    with pytest.raises(ValueError, match="config key 'beta'"):
        load_config(SmoothingConfig, overrides=[f"beta={value}"])
