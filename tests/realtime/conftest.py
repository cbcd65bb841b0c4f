"""Fixtures of the live-product tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Random-init ``tiny`` checkpoints (128 px), one per category."""
    torch = pytest.importorskip("torch")
    from realtime.checkpoint import save_checkpoint
    from realtime.config import CATEGORIES, model_preset
    from realtime.model import TryOnNet

    out = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for i, cat in enumerate(CATEGORIES):
        torch.manual_seed(i)
        cfg = model_preset("tiny", cat)
        paths[cat] = out / f"{cat}_tiny.pt"
        save_checkpoint(paths[cat], TryOnNet(cfg).state_dict(), cfg, meta={"note": "test: random init"})
    return paths


@pytest.fixture
def one_thread():
    """The resolver sets torch's process-wide thread count: restore it afterwards."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


@pytest.fixture
def tiny_resolver(one_thread, tmp_path):
    """A torch resolver on an empty weights folder: the random-init tiny fallback, not the shipped models."""
    from realtime.backends.resolver import ModelResolver

    resolver = ModelResolver("torch", preset="tiny", threads=one_thread, weights_dir=tmp_path)
    yield resolver
    resolver.close()
