"""Datasets, augmentation, losses, training loop and evaluation (depends on ``realtime``)."""
