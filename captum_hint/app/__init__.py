"""The application: the ``captum-hint`` command line, the HTML report, plotting helpers."""

from .plotting import to_hwc

__all__ = ["to_hwc"]
