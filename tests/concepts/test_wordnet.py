"""Getting WordNet: the real Debian route, and the fallback order."""

import shutil

import nltk
import pytest
from nltk.corpus.reader.wordnet import WordNetCorpusReader

from captum_hint.concepts import wordnet
from captum_hint.core import assets


@pytest.mark.filterwarnings("ignore:The multilingual functions:UserWarning")
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt-get")
def test_debian_route_prepares_a_real_nltk_wordnet(tmp_path, monkeypatch):
    data_dir = wordnet.prepare_wordnet_from_debian(tmp_path / "nltk_data")
    monkeypatch.setattr(nltk.data, "path", [str(data_dir)] + nltk.data.path)  # NLTK reads only from its path
    root = data_dir / "corpora" / "wordnet"
    assert (root / "index.sense").is_file() and not (root / "data.noun").is_symlink()
    assert len((root / "lexnames").read_text().splitlines()) == 45
    reader = WordNetCorpusReader(str(root), None)
    assert reader.get_version() == "3.0"
    dog = reader.synset_from_pos_and_offset("n", 2084071)
    assert dog.name() == "dog.n.01"
    assert "canine.n.02" in {s.name() for s in dog.closure(lambda s: s.hypernyms())}


def test_default_route_order():
    assert [name for name, _ in wordnet.ROUTES] == ["installed", "cache", "debian", "download"]


def test_first_working_route_wins_and_later_ones_are_not_tried():
    calls = []

    def route(name, works):
        def run():
            calls.append(name)
            if works is None:
                raise OSError(f"{name} broke")
            return works

        return (name, run)

    reader = wordnet.load_wordnet(
        [route("installed", False), route("cache", None), route("debian", True), route("download", True)]
    )
    assert calls == ["installed", "cache", "debian"]
    from nltk.corpus import wordnet as nltk_wordnet

    assert reader is nltk_wordnet  # identity only: attribute access would load the corpus


def test_all_routes_off_gives_a_clear_error():
    routes = [("installed", lambda: False), ("debian", lambda: (_ for _ in ()).throw(OSError("no network")))]
    with pytest.raises(wordnet.WordNetUnavailable) as error:
        wordnet.load_wordnet(routes)
    message = str(error.value)
    assert "installed: not available" in message and "debian: OSError: no network" in message
    assert "nltk.download('wordnet')" in message and "python -m captum_hint.concepts.wordnet" in message


def test_cache_route_is_off_when_nothing_was_prepared(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTUM_HINT_CACHE", str(tmp_path))
    assert wordnet.nltk_data_dir() == tmp_path / "nltk_data"
    assert wordnet._route_cache() is False


def test_debian_route_off_without_apt(monkeypatch, tmp_path):
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)
    with pytest.raises(wordnet.WordNetUnavailable, match="apt-get and dpkg are not on PATH"):
        wordnet.prepare_wordnet_from_debian(tmp_path)
