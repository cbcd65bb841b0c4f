"""Benchmarks of the live pipeline: latency (:mod:`.latency`), steadiness (:mod:`.stability`),
soak (:mod:`.soak`), report helpers (:mod:`.report`), and ``tryon bench`` (:mod:`.cli`).
"""
