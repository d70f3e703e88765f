"""The embedded loyalty engine: runs inside the shop's process, no external account needed."""

__version__ = "0.1.0"
