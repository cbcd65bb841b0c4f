"""Landmark teacher: MediaPipe run in its own venv (``setup_env.sh``), read back through ``cache``."""
