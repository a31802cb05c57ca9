"""Concept hierarchies over a classifier's classes (HINT's concept set, Fig. 1a).

A :class:`ConceptHierarchy` is a DAG of named concepts whose *leaves* are the
classifier's classes, in class-index order. Concepts may have several parents
(WordNet does). Every concept covers the set of leaf class indices below it.
"""

from __future__ import annotations

import difflib
import json
import re
import warnings
from collections import deque
from importlib import resources
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..core.checks import check_binary
from .scores import concept_scores

__all__ = ["ConceptHierarchy"]

_FORMAT = "captum_hint.ConceptHierarchy/1"
_IMAGENET_FILE = "imagenet1k_hierarchy.json"
_WNID = re.compile(r"^[nvasr]\d{8}$")


def _as_tuple(parents: Union[None, str, Iterable[str]]) -> Tuple[str, ...]:
    if parents is None:
        return ()
    if isinstance(parents, str):
        return (parents,)
    return tuple(parents)


class ConceptHierarchy:
    """A DAG of concepts whose leaves are the classifier's classes.

    Args:
        parents: ``{concept: parent or [parents]}``; concepts absent from the
            keys (or with no parents) are roots.
        leaves: the class concepts in class-index order (``leaves[i]`` is class
            ``i``). Default: the concepts with no children, in order of
            appearance.
        labels: optional human-readable label per concept (default: the name,
            or the first lemma of a WordNet synset name).
        wnids: optional WordNet id per concept, for lookups by wnid.

    Raises:
        ValueError: a cycle, a leaf listed twice, or an empty hierarchy.
    """

    def __init__(
        self,
        parents: Mapping[str, Union[None, str, Iterable[str]]],
        leaves: Optional[Sequence[str]] = None,
        labels: Optional[Mapping[str, str]] = None,
        wnids: Optional[Mapping[str, str]] = None,
    ):
        self._parents: Dict[str, Tuple[str, ...]] = {}
        for child, ps in parents.items():
            ps = tuple(dict.fromkeys(_as_tuple(ps)))  # drop repeats, keep order
            if child in ps:
                raise ValueError(f"parents: {child!r} is its own parent (a cycle)")
            self._parents[child] = ps
            for parent in ps:
                self._parents.setdefault(parent, ())
        for leaf in leaves or ():
            self._parents.setdefault(leaf, ())
        if not self._parents:
            raise ValueError("parents: the hierarchy is empty")
        self._children: Dict[str, List[str]] = {name: [] for name in self._parents}
        for child, ps in self._parents.items():
            for parent in ps:
                self._children[parent].append(child)
        if leaves is None:
            leaves = [name for name, kids in self._children.items() if not kids]
        self.leaves: List[str] = list(leaves)
        if not self.leaves:
            raise ValueError("leaves: the hierarchy has no class (no leaf)")
        if len(set(self.leaves)) != len(self.leaves):
            repeated = sorted({leaf for leaf in self.leaves if self.leaves.count(leaf) > 1})
            raise ValueError(f"leaves: listed more than once: {repeated[:10]}")
        self._order = self._topological_order()
        self._labels = dict(labels or {})
        self._wnids = dict(wnids or {})
        self._by_wnid = {wnid: name for name, wnid in self._wnids.items()}
        self._leaf_index = {leaf: i for i, leaf in enumerate(self.leaves)}
        self._depth = self._min_depths()
        self._leaf_sets = self._collect_leaf_sets()

    # ---------------------------------------------------------------- structure
    def _topological_order(self) -> List[str]:
        """Parents before children (Kahn); raises on a cycle."""
        pending = {name: len(ps) for name, ps in self._parents.items()}
        queue = deque(name for name, count in pending.items() if count == 0)
        order = []
        while queue:
            name = queue.popleft()
            order.append(name)
            for child in self._children[name]:
                pending[child] -= 1
                if pending[child] == 0:
                    queue.append(child)
        if len(order) != len(self._parents):
            raise ValueError(f"parents: the hierarchy has a cycle through {self._find_cycle(pending)}")
        return order

    def _find_cycle(self, pending: Dict[str, int]) -> str:
        start = next(name for name, count in pending.items() if count > 0)
        path, seen = [start], {start: 0}
        while True:
            following = next(p for p in self._parents[path[-1]] if pending[p] > 0)
            if following in seen:
                cycle = path[seen[following] :] + [following]
                return " -> ".join(reversed(cycle))
            seen[following] = len(path)
            path.append(following)

    def _min_depths(self) -> Dict[str, int]:
        depth: Dict[str, int] = {}
        for name in self._order:
            ps = self._parents[name]
            depth[name] = 0 if not ps else 1 + min(depth[p] for p in ps)
        return depth

    def _collect_leaf_sets(self) -> Dict[str, frozenset]:
        sets: Dict[str, set] = {}
        for name in reversed(self._order):  # children before parents
            covered = {self._leaf_index[name]} if name in self._leaf_index else set()
            for child in self._children[name]:
                covered |= sets[child]
            sets[name] = covered
        return {name: frozenset(covered) for name, covered in sets.items()}

    # ---------------------------------------------------------------- basics
    @property
    def concepts(self) -> List[str]:
        """Every concept, parents before children."""
        return list(self._order)

    @property
    def roots(self) -> List[str]:
        """The concepts without parents."""
        return [name for name in self._order if not self._parents[name]]

    @property
    def num_classes(self) -> int:
        """The number of leaves, i.e. the model's classes C."""
        return len(self.leaves)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._parents

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConceptHierarchy):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"ConceptHierarchy({len(self)} concepts, {self.num_classes} leaves, roots={self.roots[:3]})"

    def label(self, concept: str) -> str:
        """Human-readable label of a concept."""
        name = self.lookup(concept)
        if name in self._labels:
            return self._labels[name]
        if re.match(r"^.+\.[nvasr]\.\d\d$", name):
            return name.rsplit(".", 2)[0].replace("_", " ")
        return name

    def wnid(self, concept: str) -> Optional[str]:
        """The concept's WordNet id (``"n02084071"``), or None if it has none."""
        return self._wnids.get(self.lookup(concept))

    # ---------------------------------------------------------------- queries
    def lookup(self, concept: str) -> str:
        """The concept's name, from a name, a wnid or a plain word.

        Raises:
            ValueError: it matches nothing (the message lists close matches)
                or several concepts (the message lists them).
        """
        if concept in self._parents:
            return concept
        if not isinstance(concept, str):
            raise TypeError(f"concept: expected a concept name (str), got {type(concept).__name__}")
        if _WNID.match(concept):
            if concept in self._by_wnid:
                return self._by_wnid[concept]
            raise ValueError(f"concept: wnid {concept!r} is not in the hierarchy")
        word = concept.strip().lower().replace(" ", "_")
        matches = [name for name in self._order if word in self._words(name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            listed = ", ".join(f"{m} ({self.label(m)}, {len(self._leaf_sets[m])} leaves)" for m in matches[:10])
            raise ValueError(f"concept: {concept!r} is ambiguous; it matches {listed}")
        keys: Dict[str, str] = {}
        for name in self._order:
            for key in (name, name.rsplit(".", 2)[0], self.label(name)):
                keys.setdefault(key.lower(), name)
        close = [keys[k] for k in difflib.get_close_matches(concept.lower(), list(keys), n=5, cutoff=0.6)]
        hint = f"; close matches: {', '.join(dict.fromkeys(close))}" if close else ""
        raise ValueError(f"concept: {concept!r} matches nothing in the hierarchy{hint}")

    def _words(self, name: str) -> set:
        """Plain words naming a concept: its synset lemma and each part of its label."""
        parts = [name.rsplit(".", 2)[0]] + self.label(name).split(",")
        return {part.strip().lower().replace(" ", "_") for part in parts}

    def leaves_under(self, concept: str) -> List[int]:
        """Sorted class indices of the leaves under ``concept`` (itself, if a leaf)."""
        return sorted(self._leaf_sets[self.lookup(concept)])

    def parents(self, concept: str) -> List[str]:
        """The concept's direct parents (several in a DAG)."""
        return list(self._parents[self.lookup(concept)])

    def children(self, concept: str) -> List[str]:
        """The concept's direct children."""
        return list(self._children[self.lookup(concept)])

    def ancestors(self, concept: str) -> List[str]:
        """Every ancestor of ``concept`` (not itself), nearest roots first."""
        name = self.lookup(concept)
        found, queue = set(), deque(self._parents[name])
        while queue:
            parent = queue.popleft()
            if parent not in found:
                found.add(parent)
                queue.extend(self._parents[parent])
        return [n for n in self._order if n in found]

    def depth(self, concept: str) -> int:
        """Length of the shortest path from a root (roots have depth 0)."""
        return self._depth[self.lookup(concept)]

    def lowest_common_ancestor(self, *concepts: str) -> str:
        """The deepest concept that is (or is an ancestor of) every given concept.

        Ties go to the concept with fewer leaves, then to the name.

        Raises:
            ValueError: the concepts share no ancestor (several roots).
        """
        if not concepts:
            raise ValueError("concepts: give at least one concept")
        common = None
        for concept in concepts:
            name = self.lookup(concept)
            line = set(self.ancestors(name)) | {name}
            common = line if common is None else common & line
        if not common:
            raise ValueError(f"concepts: {list(concepts)} share no common ancestor")
        return min(common, key=lambda n: (-self._depth[n], len(self._leaf_sets[n]), n))

    def select(
        self,
        names: Optional[Iterable[str]] = None,
        depth: Union[None, int, Tuple[int, int]] = None,
        min_leaves: int = 1,
        max_leaves: Optional[int] = None,
        include_leaves: bool = False,
    ) -> List[str]:
        """Choose a concept set; returns names ordered by depth, then size.

        Args:
            names: candidate concepts (names, wnids or words); default all.
            depth: a depth, or an inclusive ``(low, high)`` range.
            min_leaves / max_leaves: bounds on the number of leaves covered.
            include_leaves: keep the class concepts themselves.
        """
        pool = [self.lookup(n) for n in names] if names is not None else self._order
        low, high = (depth, depth) if isinstance(depth, int) else (depth or (0, float("inf")))
        chosen = [
            n
            for n in dict.fromkeys(pool)
            if low <= self._depth[n] <= high
            and min_leaves <= len(self._leaf_sets[n]) <= (max_leaves if max_leaves is not None else float("inf"))
            and (include_leaves or n not in self._leaf_index)
        ]
        return sorted(chosen, key=lambda n: (self._depth[n], -len(self._leaf_sets[n]), n))

    def collapse_chains(self) -> "ConceptHierarchy":
        """A copy without the concepts that have exactly one child and are not classes.

        Such a concept covers the same leaves as its child, so it adds nothing
        to an explanation (WordNet's ``entity -> physical_entity -> object``).
        The child inherits its parents.
        """
        parents = {name: list(ps) for name, ps in self._parents.items()}
        children = {name: list(kids) for name, kids in self._children.items()}
        for name in self._order:
            if len(children[name]) != 1 or name in self._leaf_index:
                continue
            (child,) = children[name]
            inherited = [p for p in parents[child] if p != name] + [p for p in parents[name] if p not in parents[child]]
            parents[child] = inherited
            for parent in parents[name]:
                children[parent] = [child if c == name else c for c in children[parent]]
                children[parent] = list(dict.fromkeys(children[parent]))
            del parents[name], children[name]
        return ConceptHierarchy(
            parents,
            self.leaves,
            {n: l for n, l in self._labels.items() if n in parents},
            {n: w for n, w in self._wnids.items() if n in parents},
        )

    # ---------------------------------------------------------------- labels
    def membership(self, concepts: Sequence[str], device=None) -> Tensor:
        """K x C boolean matrix: ``[k, c]`` is True if class c is under concept k."""
        matrix = torch.zeros(len(concepts), self.num_classes, dtype=torch.bool, device=device)
        for k, concept in enumerate(concepts):
            matrix[k, self.leaves_under(concept)] = True
        return matrix

    def check_labels(self, labels: Tensor) -> Tensor:
        """``labels`` as a 1-D tensor of class indices; raises ValueError when any is out of range."""
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or labels.is_floating_point():
            raise ValueError(f"labels: expected a 1-D tensor of class indices, got {labels.dtype} {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = labels[(labels < 0) | (labels >= self.num_classes)][0].item()
            raise ValueError(f"labels: class index {bad} is out of range (expected 0..{self.num_classes - 1})")
        return labels

    def leaf_indicator(self, labels: Tensor) -> Tensor:
        """N x C booleans: the leaf classes each image holds.

        ``labels`` is either N class indices (one leaf per image) or an N x C
        0/1 (or boolean) matrix, several leaves per image (an image with
        objects of several classes, as in VOC or COCO).
        """
        labels = torch.as_tensor(labels)
        if labels.dim() == 2:
            if labels.shape[1] != self.num_classes:
                raise ValueError(f"labels: expected N x {self.num_classes} leaf indicators (one column per class), "
                                 f"got shape {tuple(labels.shape)}")
            return check_binary("labels", labels)
        labels = self.check_labels(labels)
        return torch.nn.functional.one_hot(labels, self.num_classes).bool()

    def multi_hot(self, labels: Tensor, concepts: Sequence[str]) -> Tensor:
        """N x K float matrix: 1 where one of image n's leaf classes is under concept k.

        Args:
            labels: N leaf class indices, or an N x C 0/1 matrix of several leaves per image
                (see :meth:`leaf_indicator`).
            concepts: K concepts.
        """
        leaves = self.leaf_indicator(labels)
        return self.under_concepts(leaves, self.membership(concepts, leaves.device)).float()

    @staticmethod
    def under_concepts(leaves: Tensor, membership: Tensor) -> Tensor:
        """N x K booleans: image n is under concept k when one of its leaves is.

        Args:
            leaves: N x C booleans (:meth:`leaf_indicator`).
            membership: K x C booleans (:meth:`membership`), built once by the caller.
        """
        return leaves.float() @ membership.T.float() > 0

    def concept_scores(self, logits: Tensor, concepts: Sequence[str]) -> Tensor:
        """N x K concept scores ``log sum_{leaves} softmax(logits)`` from N x C logits."""
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits: expected N x {self.num_classes} class scores, got shape {tuple(logits.shape)}"
            )
        return concept_scores(logits, self.membership(concepts, logits.device))

    # ---------------------------------------------------------------- display
    def format_tree(self, root: Optional[str] = None, max_depth: Optional[int] = None, max_lines: Optional[int] = None) -> str:
        """An indented tree with leaf counts.

        Children are ordered by their first class index. A concept with several
        parents is expanded where it first appears; later appearances end in ``^``.
        """
        starts = [self.lookup(root)] if root is not None else self.roots
        lines: List[str] = []
        expanded = set()
        stack = [(name, 0) for name in reversed(starts)]
        while stack:
            name, level = stack.pop()
            seen = name in expanded
            lines.append(f"{'  ' * level}{name} ({len(self._leaf_sets[name])}){' ^' if seen else ''}")
            if seen:
                continue
            expanded.add(name)
            if max_depth is None or level < max_depth:
                kids = sorted(self._children[name], key=lambda c: (min(self._leaf_sets[c], default=-1), c))
                stack.extend((child, level + 1) for child in reversed(kids))
        if max_lines is not None and len(lines) > max_lines:
            hidden = len(lines) - max_lines
            lines = lines[:max_lines] + [f"... {hidden} more lines; print(h.format_tree()) shows all"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_tree(max_lines=60)

    def plot(self, concepts: Optional[Sequence[str]] = None, ax=None):
        """Draw ``concepts`` (default: all non-leaf concepts, if at most 60) as a tree.

        Each concept is linked to its nearest ancestors within the set; boxes
        show the label and the number of leaves. Returns the matplotlib Axes.
        """
        import matplotlib.pyplot as plt

        if concepts is None:
            concepts = self.select()
            if len(concepts) > 60:
                raise ValueError(
                    f"concepts: the hierarchy has {len(concepts)} concepts; choose at most "
                    "60 to plot, e.g. h.select(min_leaves=20)"
                )
        chosen = [self.lookup(c) for c in concepts]
        chosen_set = set(chosen)
        links = {c: self._nearest_chosen_ancestors(c, chosen_set) for c in chosen}
        level = {}
        for c in sorted(chosen, key=self._order.index):
            level[c] = 1 + max((level[p] for p in links[c]), default=-1)
        rows: Dict[int, List[str]] = {}
        for c in sorted(chosen, key=lambda c: min(self._leaf_sets[c], default=0)):
            rows.setdefault(level[c], []).append(c)
        position = {
            c: ((i + 0.5) / len(row), -lvl) for lvl, row in rows.items() for i, c in enumerate(row)
        }
        if ax is None:
            width = max(6.0, 1.6 * max(len(r) for r in rows.values()))
            _, ax = plt.subplots(figsize=(width, 1.2 * len(rows) + 1))
        for child, ps in links.items():
            for parent in ps:
                (x0, y0), (x1, y1) = position[parent], position[child]
                ax.plot([x0, x1], [y0, y1], color="0.6", linewidth=1, zorder=1)
        for c, (x, y) in position.items():
            ax.text(
                x, y, f"{self.label(c)}\n({len(self._leaf_sets[c])})", ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", facecolor="white", edgecolor="0.3"), zorder=2,
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(-max(rows) - 0.6, 0.6)
        ax.axis("off")
        return ax

    def _nearest_chosen_ancestors(self, concept: str, chosen: set) -> List[str]:
        found, frontier, seen = [], list(self._parents[concept]), set()
        while frontier:
            parent = frontier.pop()
            if parent in seen:
                continue
            seen.add(parent)
            if parent in chosen:
                found.append(parent)
            else:
                frontier.extend(self._parents[parent])
        # keep only the nearest: drop chosen ancestors of other found ones
        return [p for p in found if not any(p in self.ancestors(q) for q in found if q != p)]

    # ---------------------------------------------------------------- building
    @classmethod
    def from_parents(cls, parents: Mapping[str, Union[str, Iterable[str]]], leaves: Optional[Sequence[str]] = None, **kwargs) -> "ConceptHierarchy":
        """From a ``{child: parent or [parents]}`` mapping (the constructor)."""
        return cls(parents, leaves, **kwargs)

    @classmethod
    def from_paths(cls, paths: Sequence[str], sep: str = "/") -> "ConceptHierarchy":
        """From paths such as ``"animals/mammals/dogs/husky"``; the last part is a class.

        Leaves are in the order of ``paths``. A class on several paths gets
        several parents.
        """
        parents: Dict[str, List[str]] = {}
        leaves: List[str] = []
        for path in paths:
            parts = [p for p in path.split(sep) if p]
            if not parts:
                raise ValueError(f"paths: empty path {path!r}")
            for parent, child in zip(parts, parts[1:]):
                parents.setdefault(child, [])
                if parent not in parents[child]:
                    parents[child].append(parent)
            parents.setdefault(parts[0], [])
            if parts[-1] not in leaves:
                leaves.append(parts[-1])
        return cls(parents, leaves)

    @classmethod
    def from_nested(cls, tree: Mapping) -> "ConceptHierarchy":
        """From a nested dict: ``{"animal": {"dog": ["husky", "malamute"], "cat": None}}``.

        Dict values are sub-trees; a list holds classes; ``None`` makes the key a class.
        Leaves are in order of appearance.
        """
        parents: Dict[str, List[str]] = {}
        leaves: List[str] = []

        def walk(node, parent):
            if isinstance(node, Mapping):
                for name, sub in node.items():
                    if not isinstance(name, str) or not name.strip():
                        raise ValueError(f"tree: concept names must be non-empty strings, got {name!r} under "
                                         f"{parent!r}")
                    parents.setdefault(name, [])
                    if parent is not None and parent not in parents[name]:
                        parents[name].append(parent)
                    if sub is None and name not in leaves:
                        leaves.append(name)
                    walk(sub, name)
            elif isinstance(node, (list, tuple)):
                for leaf in node:
                    walk({leaf: None}, parent)
            elif node is not None:
                raise TypeError(f"tree: expected dicts, lists or None, got {type(node).__name__} under {parent!r}")

        walk(tree, None)
        return cls(parents, leaves)

    def to_dict(self) -> dict:
        """The JSON-ready stored form (reloaded by :meth:`from_dict`)."""
        return {
            "format": _FORMAT,
            "leaves": list(self.leaves),
            "parents": {name: list(self._parents[name]) for name in self._order if self._parents[name]},
            "labels": {name: self._labels[name] for name in self._order if name in self._labels},
            "wnids": {name: self._wnids[name] for name in self._order if name in self._wnids},
        }

    @classmethod
    def from_dict(cls, data: Union[Mapping, Sequence]) -> "ConceptHierarchy":
        """From the stored form of :meth:`to_dict`, a nested dict, or a list of paths."""
        if isinstance(data, Mapping) and data.get("format") == _FORMAT:
            return cls(data["parents"], data["leaves"], data.get("labels"), data.get("wnids"))
        if isinstance(data, Mapping):
            return cls.from_nested(data)
        if isinstance(data, Sequence) and not isinstance(data, str) and all(isinstance(p, str) for p in data):
            return cls.from_paths(data)
        raise TypeError("data: expected the stored form, a nested dict, or a list of path strings")

    def to_json(self, path: Union[str, Path]) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` (reloaded by :meth:`from_json`)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=0, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: Union[str, Path]) -> "ConceptHierarchy":
        """From a JSON file holding any form :meth:`from_dict` takes.

        Raises:
            ValueError: naming the file, when it is not JSON or not a hierarchy.
        """
        text = Path(path).read_text(encoding="utf-8")
        try:
            return cls.from_dict(json.loads(text))
        except RecursionError:
            raise ValueError(f"path: {path} is not a readable concept hierarchy (nested deeper than Python can "
                             "read)") from None
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ValueError(f"path: {path} is not a readable concept hierarchy ({type(error).__name__}: "
                             f"{error})") from None

    @classmethod
    def imagenet(cls) -> "ConceptHierarchy":
        """The bundled WordNet 3.0 hierarchy over ImageNet-1k (no WordNet needed).

        Leaves are the 1000 classes in the usual class-index order; built by
        ``scripts/build_imagenet_hierarchy.py``.
        """
        text = resources.files(__package__).joinpath(_IMAGENET_FILE).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_wordnet(cls, synsets: Optional[Sequence[str]] = None, wordnet=None) -> "ConceptHierarchy":
        """From WordNet hypernyms over classes given as wnids or synset names.

        Args:
            synsets: the classes in class-index order, as wnids (``"n02084071"``)
                or synset names (``"dog.n.01"``). Default: ImageNet-1k's wnids.
            wordnet: an NLTK WordNet reader; default :func:`captum_hint.concepts.wordnet.load_wordnet`.

        Leaves are labelled with their lemmas joined by ", " (for ImageNet, the
        usual class names).
        """
        if wordnet is None:
            from .wordnet import load_wordnet

            wordnet = load_wordnet()
        if synsets is None:
            synsets = imagenet_wnids()
        leaves = [_synset(wordnet, s) for s in synsets]
        parents: Dict[str, List[str]] = {}
        wnids: Dict[str, str] = {}
        queue = deque(leaves)
        while queue:
            synset = queue.popleft()
            name = synset.name()
            if name in parents:
                continue
            # NLTK keeps pointers in sets; sorting makes the order independent of hashing.
            hypernyms = sorted(synset.hypernyms(), key=lambda h: h.name())
            parents[name] = [h.name() for h in hypernyms]
            wnids[name] = f"{synset.pos()}{synset.offset():08d}"
            queue.extend(hypernyms)
        labels = {s.name(): ", ".join(l.replace("_", " ") for l in s.lemma_names()) for s in leaves}
        return cls(parents, [s.name() for s in leaves], labels, wnids)


def _synset(wordnet, identifier: str):
    if _WNID.match(identifier):
        from nltk.corpus.reader.wordnet import WordNetError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NLTK warns, then returns None
                synset = wordnet.synset_from_pos_and_offset(identifier[0], int(identifier[1:]))
        except WordNetError:
            synset = None
        if synset is None:
            raise ValueError(f"synsets: unknown wnid {identifier!r} (not in WordNet {wordnet.get_version()})")
        return synset
    try:
        return wordnet.synset(identifier)
    except Exception:
        raise ValueError(
            f"synsets: unknown synset {identifier!r}; expected a wnid such as 'n02084071' "
            "or a synset name such as 'dog.n.01'"
        ) from None


def imagenet_wnids() -> List[str]:
    """The 1000 ImageNet-1k wnids in class-index order (from the bundled file)."""
    hierarchy = ConceptHierarchy.imagenet()
    return [hierarchy.wnid(leaf) for leaf in hierarchy.leaves]
