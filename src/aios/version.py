"""AIOS's version, in a module of its own: the replica server and the API report it
without importing the package's root (which would load the SDK)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
