"""Runtimes behind one contract (:mod:`.base`), one opener (:mod:`.opener`), and the resolver
that picks the model of each category (:mod:`.resolver`).

Nothing is imported here: each backend module imports its runtime lazily.
"""
