"""The live product: capture, tracking, smoothing, the pipeline, render, record, the app.

Built on the core (:mod:`realtime`); never imports :mod:`realtime.bench`.
"""
