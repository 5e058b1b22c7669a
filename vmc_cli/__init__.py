"""vmc: video motion customization (VMC, CVPR 2024) from the command line."""

__version__ = "0.1.0"

from .hookspecs import hookimpl  # noqa: E402  (plugins import this marker)

__all__ = ["__version__", "hookimpl"]
