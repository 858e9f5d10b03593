"""learnsail: a pluggable online-education platform (the core)."""

__version__ = "0.1.0"

from learnsail.hookspecs import hookimpl  # noqa: E402  (the plugin authors' import)

__all__ = ["__version__", "hookimpl"]
