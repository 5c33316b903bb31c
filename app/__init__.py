"""Composition and entry points: the ``simulsub`` CLI, model profiles, what to load from where."""

__version__ = "0.1.0"
