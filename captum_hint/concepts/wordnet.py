"""WordNet 3.0 for NLTK, found or prepared offline.

:func:`load_wordnet` tries, in order:

1. ``installed``: NLTK's own data (``nltk.data.path``) already has WordNet;
2. ``cache``: a WordNet prepared earlier by route 3 under the cache dir;
3. ``debian``: Debian's ``wordnet-base`` and ``wordnet-sense-index`` packages,
   fetched with ``apt-get download`` (no root needed), unpacked with
   ``dpkg -x`` and turned into an NLTK data dir under the cache dir;
4. ``download``: ``nltk.download("wordnet")``, when online;

and otherwise raises :class:`WordNetUnavailable` saying how to get it.

The cache dir is ``$CAPTUM_HINT_CACHE``, else ``$XDG_CACHE_HOME/captum_hint``,
else ``~/.cache/captum_hint``. ``python -m captum_hint.concepts.wordnet`` prepares it.
"""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import nltk

from ..core.assets import DebianUnavailable, cache_dir, download_and_unpack

__all__ = [
    "DEBIAN_PACKAGES",
    "WordNetUnavailable",
    "cache_dir",
    "load_wordnet",
    "nltk_data_dir",
    "prepare_wordnet_from_debian",
]

DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")
_SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


class WordNetUnavailable(RuntimeError):
    """No route could provide WordNet."""


def nltk_data_dir() -> Path:
    """The NLTK data dir that the ``debian`` route fills and the ``cache`` route reads."""
    return cache_dir() / "nltk_data"


def _lexnames_from_man_page(man_page: Path) -> str:
    """WordNet's ``lexnames`` file (NLTK needs it; Debian ships only its man page)."""
    lines = []
    with gzip.open(man_page, "rt", encoding="utf-8") as text:
        for line in text:
            match = re.match(r"^(\d\d)\t\s*(\S+)\s", line)
            if match:
                number, name = match.groups()
                lines.append(f"{number}\t{name}\t{_SYNTACTIC_CATEGORY[name.split('.')[0]]}")
    if len(lines) != 45:
        raise WordNetUnavailable(f"expected 45 lexicographer files in {man_page.name}, found {len(lines)}")
    return "\n".join(lines) + "\n"


def prepare_wordnet_from_debian(data_dir: Optional[Path] = None) -> Path:
    """Fetch Debian's WordNet packages and lay them out as an NLTK data dir.

    Args:
        data_dir: the NLTK data dir to fill (default :func:`nltk_data_dir`).

    Returns:
        ``data_dir``; WordNet is in ``data_dir/corpora/wordnet``.
    """
    data_dir = Path(data_dir) if data_dir is not None else nltk_data_dir()
    target = data_dir / "corpora" / "wordnet"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            unpacked = download_and_unpack(DEBIAN_PACKAGES, work)
        except DebianUnavailable as error:
            raise WordNetUnavailable(str(error)) from None
        dictionary = unpacked / "usr" / "share" / "wordnet"
        staging = work / "wordnet"
        # NLTK refuses symlinks that leave its data dir, so the files are copied.
        shutil.copytree(dictionary, staging, symlinks=False)
        if not (staging / "index.sense").exists():
            raise WordNetUnavailable("wordnet-sense-index did not provide index.sense")
        man_page = unpacked / "usr" / "share" / "man" / "man5" / "lexnames.5WN.gz"
        (staging / "lexnames").write_text(_lexnames_from_man_page(man_page), encoding="utf-8")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), str(target))
    return data_dir


def _use_data_dir(data_dir: Path) -> None:
    if str(data_dir) not in nltk.data.path:
        nltk.data.path.insert(0, str(data_dir))


def _wordnet_loads() -> bool:
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    return wordnet.synset("dog.n.01") is not None


def _route_installed() -> bool:
    return _wordnet_loads()


def _route_cache() -> bool:
    if not (nltk_data_dir() / "corpora" / "wordnet" / "lexnames").exists():
        return False
    _use_data_dir(nltk_data_dir())
    return _wordnet_loads()


def _route_debian() -> bool:
    _use_data_dir(prepare_wordnet_from_debian())
    return _wordnet_loads()


def _route_download() -> bool:
    return bool(nltk.download("wordnet", quiet=True, raise_on_error=True)) and _wordnet_loads()


Route = Tuple[str, Callable[[], bool]]

#: The routes :func:`load_wordnet` tries, in order.
ROUTES: List[Route] = [
    ("installed", _route_installed),
    ("cache", _route_cache),
    ("debian", _route_debian),
    ("download", _route_download),
]


def load_wordnet(routes: Optional[Sequence[Route]] = None):
    """NLTK's WordNet corpus reader, from the first route that works.

    Args:
        routes: ``(name, callable)`` pairs to try instead of :data:`ROUTES`;
            each callable returns True once ``nltk.corpus.wordnet`` loads.

    Raises:
        WordNetUnavailable: no route worked; the message lists each failure.
    """
    failures = []
    for name, route in ROUTES if routes is None else routes:
        try:
            if route():
                from nltk.corpus import wordnet

                return wordnet
            failures.append(f"{name}: not available")
        except Exception as error:  # each route fails in its own way; report them all
            failures.append(f"{name}: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}")
    raise WordNetUnavailable(
        "WordNet 3.0 for NLTK is not available. Tried " + "; ".join(failures) + ". "
        "Get it with nltk.download('wordnet') when online, or on Debian/Ubuntu with "
        "`python -m captum_hint.concepts.wordnet` (apt-get download of "
        f"{' and '.join(DEBIAN_PACKAGES)}). ImageNet users need no WordNet: "
        "ConceptHierarchy.imagenet() reads the bundled hierarchy."
    )


if __name__ == "__main__":
    reader = load_wordnet()
    print(f"WordNet {reader.get_version()} ready ({nltk_data_dir()} is on nltk.data.path when prepared here)")
