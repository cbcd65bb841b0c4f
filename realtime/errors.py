"""Errors shared across the core, the backends and the tools built on them.

Each names its cause and what to do; the CLI prints it without a traceback.
"""

from __future__ import annotations


class BackendError(RuntimeError):
    """A backend cannot be created or an artifact does not fit (message says what to rebuild)."""
