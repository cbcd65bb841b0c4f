"""Real-time virtual accessory try-on (keypoint hallucination).

The ``realtime`` package is the product and the shared core: configuration,
geometry, heatmap codec, backends and the live loop. It is importable without
torch; only ``realtime.model`` and ``realtime.backends.torch_backend`` need it.
``training`` and ``engine_build`` import ``realtime``, never the reverse.
"""

__version__ = "0.1.0"
