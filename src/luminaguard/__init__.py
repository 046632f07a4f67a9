"""LuminaGuard: a local-first, secure runtime for AI agents."""

__version__ = "0.1.0"
