"""Fetching files from Debian packages without root: ``apt-get download`` + ``dpkg -x``.

Used for the offline assets (WordNet, Tux Paint stamp photos). The cache dir
is ``$CAPTUM_HINT_CACHE``, else ``$XDG_CACHE_HOME/captum_hint``, else
``~/.cache/captum_hint``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

__all__ = ["DebianUnavailable", "cache_dir", "download_and_unpack"]


class DebianUnavailable(RuntimeError):
    """The Debian packages could not be fetched or unpacked."""


def cache_dir() -> Path:
    """captum_hint's cache directory."""
    if os.environ.get("CAPTUM_HINT_CACHE"):
        return Path(os.environ["CAPTUM_HINT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "captum_hint"


def _run(command: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=900)


def download_and_unpack(packages: Sequence[str], workdir: Path) -> Path:
    """Download ``packages`` into ``workdir`` and unpack them; returns the unpacked root.

    A fresh machine may have empty package lists: as root, ``apt-get update``
    is run once and the download retried; otherwise the error says to run it.

    Raises:
        DebianUnavailable: no apt-get/dpkg, or the download or unpacking failed.
    """
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise DebianUnavailable("apt-get and dpkg are not on PATH (not a Debian-like system)")
    workdir = Path(workdir)
    result = _run(["apt-get", "download", *packages], workdir)
    if result.returncode != 0 and "Unable to locate package" in result.stderr:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            _run(["apt-get", "update"], workdir)
            result = _run(["apt-get", "download", *packages], workdir)
        else:
            raise DebianUnavailable(f"apt-get does not know {' '.join(packages)}; run `sudo apt-get update` first")
    if result.returncode != 0:
        raise DebianUnavailable(f"apt-get download {' '.join(packages)} failed: {result.stderr.strip()}")
    root = workdir / "root"
    for deb in sorted(workdir.glob("*.deb")):
        unpacked = _run(["dpkg", "-x", str(deb), str(root)], workdir)
        if unpacked.returncode != 0:
            raise DebianUnavailable(f"dpkg -x {deb.name} failed: {unpacked.stderr.strip()}")
        deb.unlink()  # the archive is not needed once unpacked
    return root
