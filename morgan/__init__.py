"""Morgan: a reproducible, per-environment PyPI mirror for air-gapped networks."""

__version__ = "0.1.0"
