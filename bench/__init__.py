"""The peer benchmark of issue 3: ``python -m bench``."""
