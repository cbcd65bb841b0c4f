"""Shared fixtures. Tests never need ../shared, a GPU or a webcam."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
