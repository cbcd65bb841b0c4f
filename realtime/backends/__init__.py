"""Inference backends behind one contract (see :mod:`realtime.backends.base`)."""

from realtime.backends.base import Backend, BackendError, ModelInfo, open_backend

__all__ = ["Backend", "BackendError", "ModelInfo", "open_backend"]
