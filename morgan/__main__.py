"""``python -m morgan``."""

from morgan.cli import entry

entry()
