"""A browsable static site of a fitted HINT, with gAP, SeVec and AfI beside it (``captum-hint explore``).

Three kinds of page, each one HTML page (``app/site/page.html`` with its
kind filled in) rendered in the browser by ``site.js`` from a small data file: a page per concept (``concept.html?c=…``),
per neuron (``neuron.html?n=…``) and per image (``image.html?i=…``), plus an
index with the hierarchy and a search box. The data files are JavaScript
(``data/…/*.js``, each one call of ``captumHintData``) rather than JSON
because browsers refuse ``fetch`` from ``file://``: the site opens from disk,
no server needed.

Size is bounded by what pages show: one small data file per concept, neuron
and image, the images as JPEG, and reference patches only for the neurons
that some page lists (the systems' top neurons and the neurons the gAP trees
pass through), whatever the layer's width.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from string import Template
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..attr._base import check_image_batch
from ..core.checks import check_fraction, check_output_folder, check_positive_int, check_tensor
from ..core.model_state import evaluation_mode
from ..core.stages import forward_order, stage_layers
from ..gap import EvidenceNode, label_with_concepts
from ..hint.reference_patches import top_activating_patches
from .cli import _say

__all__ = ["write_site", "explore_model", "gap_layers_from", "SITE_PAGES", "SITE_ASSETS"]

#: The site's pages: file -> (kind, title); each is ``captum_hint/app/site/page.html`` filled in.
SITE_PAGES = {"index.html": ("index", "Overview"), "concept.html": ("concept", "Concept"),
              "neuron.html": ("neuron", "Neuron"), "image.html": ("image", "Image")}
#: The files every page shares, copied from ``captum_hint/app/site``.
SITE_ASSETS = ("site.js", "site.css")
#: Largest side of a map stored for the browser (gAP's lower layers are coarsened to it).
MAX_MAP_SIDE = 28
#: Side of a stored reference patch in pixels (larger receptive fields are shrunk to it).
MAX_PATCH_SIDE = 96
#: Images per forward pass (bounds memory whatever the number of images).
BLOCK = 32


def slugs(concepts: Sequence[str]) -> Dict[str, str]:
    """File-name-safe, distinct ids of concepts (WordNet names such as ``dog.n.01`` pass unchanged)."""
    ids = {c: re.sub(r"[^A-Za-z0-9_.-]", "_", c) for c in concepts}
    taken = list(ids.values())
    return {c: i if taken.count(i) == 1 else f"{i}-{k}" for k, (c, i) in enumerate(ids.items())}


def gap_layers_from(model, layer: str, input_shape: Sequence[int]) -> List[str]:
    """``layer`` and every stage end after it, in forward order: gAP trees that end at HINT's layer."""
    stages = stage_layers(model, input_shape)
    order = forward_order(model, list(dict.fromkeys([*stages, layer])), input_shape, spatial=True)
    return order[order.index(layer):]


def _rounded(values: Tensor, digits: int = 3) -> list:
    return torch.round(values.double() * 10 ** digits).div(10 ** digits).tolist()  # doubles print short


def _map_for_browser(activation: Tensor) -> list:
    side = max(activation.shape[-2:])
    if side > MAX_MAP_SIDE:
        activation = F.adaptive_avg_pool2d(activation[None, None].float(),
                                           [max(1, s * MAX_MAP_SIDE // side) for s in activation.shape[-2:]])[0, 0]
    peak = activation.abs().max().clamp_min(1e-12)
    return _rounded(activation / peak, 2)


def _nearest_fitted(hierarchy, concepts: Sequence[str]) -> Dict[str, List[str]]:
    """Each fitted concept's nearest fitted ancestors (the site's hierarchy)."""
    chosen = set(concepts)
    parents = {}
    for concept in concepts:
        above = [a for a in hierarchy.ancestors(concept) if a in chosen]
        parents[concept] = [a for a in above if not any(a in hierarchy.ancestors(b) for b in above if b != a)]
    return parents


def _top_lists(weights: Tensor, n: int) -> List[List[dict]]:
    """Per column of D x K ``weights``: its top-``n`` rows as {"neuron", "value"} (descending)."""
    top = torch.topk(weights, min(n, weights.shape[0]), dim=0)
    return [[{"neuron": int(i), "value": round(float(v), 5)} for v, i in zip(top.values[:, k], top.indices[:, k])]
            for k in range(weights.shape[1])]


def _sevec_weights(semantic_vectors, hint) -> Optional[Tensor]:
    """D x K loadings of HINT's concepts (NaN columns for concepts SeVec has not fitted), or None."""
    if semantic_vectors is None:
        return None
    if not hasattr(semantic_vectors, "vectors_"):
        raise ValueError("semantic_vectors: expected a fitted SemanticVectors (call fit first)")
    if semantic_vectors.layer_module is not hint.layer_module or semantic_vectors.use_layer_input:
        raise ValueError(f"semantic_vectors: expected them fitted at HINT's layer {hint.layer!r} (its output), so "
                         "that their channels are HINT's neurons")
    width = hint.scores_.shape[0]
    vectors = semantic_vectors.vectors_
    if vectors.shape[1] % width:
        raise ValueError(f"semantic_vectors: width {vectors.shape[1]} is not a multiple of HINT's {width} neurons")
    # a spatial vector has one entry per (channel, position): a channel's loading is their sum
    loadings = vectors.view(len(vectors), width, -1).sum(2)
    columns = [loadings[semantic_vectors.concepts_.index(c)] if c in semantic_vectors.concepts_
               else torch.full((width,), float("nan")) for c in hint.concepts]
    return torch.stack(columns, 1)


def _afi_weights(afi_importance: Optional[Mapping[str, Tensor]], hint) -> Optional[Tensor]:
    if not afi_importance:
        return None
    width = hint.scores_.shape[0]
    columns = []
    known = {hint.hierarchy.lookup(c): w for c, w in afi_importance.items()}
    unknown = sorted(set(known) - set(hint.concepts))
    if unknown:
        raise ValueError(f"afi_importance: {unknown} are not concepts of the HINT ({hint.concepts})")
    for concept in hint.concepts:
        if concept not in known:
            columns.append(torch.full((width,), float("nan")))  # AfI not fitted for it
            continue
        columns.append(check_tensor(f"afi_importance[{concept!r}]", known[concept], "float", (width,)).float())
    return torch.stack(columns, 1)


def _display_pixels(images: Tensor, pixels: Optional[Tensor]) -> Tensor:
    if pixels is not None:
        check_tensor("pixels", pixels, "float", tuple(images.shape))
        if pixels.min() < 0 or pixels.max() > 1:
            raise ValueError("pixels: expected RGB values in [0, 1] (e.g. ModelSpec.denormalize(images))")
        return pixels
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    return (images - low) / (images.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-12)


def _save_jpeg(pixels: Tensor, path: Path, quality: int = 88) -> None:
    array = (pixels.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path, quality=quality)


def _tree_for_browser(node: EvidenceNode, hint_layer: str, concept_ids: Dict[str, str]) -> dict:
    return {"layer": node.layer, "channel": node.channel, "neuron": node.layer == hint_layer,
            "contribution": round(float(node.contribution), 5), "share": round(float(node.share), 4),
            "peak_pixel": None if node.peak_pixel is None else [round(float(v), 1) for v in node.peak_pixel],
            "map": None if node.activation_map is None else _map_for_browser(node.activation_map),
            "concepts": [[concept_ids[c], round(float(s), 5)] for c, s in node.concepts if c in concept_ids],
            "children": [_tree_for_browser(child, hint_layer, concept_ids) for child in node.children]}


def _tree_copy(node: EvidenceNode) -> EvidenceNode:
    """The tree's nodes copied (maps shared, not copied), so that naming them changes no node of ``node``."""
    return dataclasses.replace(node, concepts=list(node.concepts), children=[_tree_copy(c) for c in node.children])


def _decision_name(tree: EvidenceNode, hierarchy) -> str:
    if 0 <= tree.channel < len(hierarchy.leaves):
        return f"{hierarchy.label(hierarchy.leaves[tree.channel])} (class {tree.channel})"
    return "a concept's score" if tree.channel < 0 else f"class {tree.channel}"


def _write_data(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    path.write_text(f"captumHintData({text});\n", encoding="utf-8")


def _finite_or_none(values) -> list:
    return [None if v != v else round(float(v), 4) for v in values]  # NaN -> null (JSON has no NaN)


def write_site(
    out: Union[str, Path],
    hint,
    images: Tensor,
    labels: Optional[Sequence[Iterable[int]]] = None,
    *,
    pixels: Optional[Tensor] = None,
    names: Optional[Sequence[str]] = None,
    trees: Optional[Sequence[EvidenceNode]] = None,
    semantic_vectors=None,
    afi_importance: Optional[Mapping[str, Tensor]] = None,
    reference_images: Optional[Iterable] = None,
    top_n: int = 10,
    top_fraction: float = 0.2,
    n_examples: int = 4,
    n_patches: int = 6,
    seed: int = 0,
    title: Optional[str] = None,
    model_name: Optional[str] = None,
    notes: Sequence[str] = (),
    progress: bool = True,
) -> Path:
    """Write the site into ``out``; returns ``out/index.html``.

    Args:
        out: the site folder (made if missing; files of an earlier site are replaced).
        hint: a fitted :class:`~captum_hint.HINT`.
        images: N x 3 x H x W model inputs, the images pages are made for.
        labels: per image, the leaf classes of its objects (shown, and used to
            mark a concept's examples as containing it or not).
        pixels: the images for display, RGB in [0, 1] (default: each image
            rescaled to [0, 1]).
        names: per image, a name shown and searchable (default ``image <i>``).
        trees: per image, its gAP :class:`~captum_hint.gap.EvidenceNode` tree;
            nodes at HINT's layer are named by HINT and link to neuron pages.
        semantic_vectors: a fitted :class:`~captum_hint.sevec.SemanticVectors`
            at HINT's layer: each concept's top channels by loading.
        afi_importance: concept -> D channel importances at HINT's layer (AfI's
            :func:`~captum_hint.afi.channel_importance` of the concept's occluder).
        reference_images: batches streamed for the reference patches (default: ``images``).
        top_n: neurons listed per concept and system.
        top_fraction: share of neurons behind each concept map (HINT's 20 %).
        n_examples: localization examples per concept page.
        n_patches: reference patches per shown neuron.
        seed: seeds the bootstrap intervals of the classifier scores.
        title: the site's title.
        model_name: the model's name on the pages (default: its class name).
        notes: sentences shown on the index page (e.g. why a system was left out).
    """
    out = check_output_folder("out", out)
    check_image_batch(images, "images")
    check_positive_int("top_n", top_n)
    check_positive_int("n_examples", n_examples)
    check_positive_int("n_patches", n_patches)
    check_fraction("top_fraction", top_fraction)
    if not hasattr(hint, "scores_"):
        raise ValueError("hint: expected a fitted HINT (call fit or HINT.load first)")
    n_images = len(images)
    if labels is not None and len(labels) != n_images:
        raise ValueError(f"labels: expected one list of classes per image ({n_images}), got {len(labels)}")
    if names is not None and len(names) != n_images:
        raise ValueError(f"names: expected one name per image ({n_images}), got {len(names)}")
    if trees is not None and len(trees) != n_images:
        raise ValueError(f"trees: expected one gAP tree per image ({n_images}), got {len(trees)}")
    hierarchy, concepts = hint.hierarchy, list(hint.concepts)
    width = hint.scores_.shape[0]
    pixels = _display_pixels(images, pixels)
    labels = [sorted({int(c) for c in row}) for row in labels] if labels is not None else [[] for _ in range(n_images)]
    outside = sorted({c for row in labels for c in row if not 0 <= c < len(hierarchy.leaves)})
    if outside:
        raise ValueError(f"labels: expected class indices in 0..{len(hierarchy.leaves) - 1}, got {outside}")
    names = list(names) if names is not None else [f"image {i}" for i in range(n_images)]
    ids = slugs(concepts)
    systems = {"HINT": hint.scores_.float()}
    sevec, afi = _sevec_weights(semantic_vectors, hint), _afi_weights(afi_importance, hint)
    if sevec is not None:
        systems["SeVec"] = sevec
    if afi is not None:
        systems["AfI"] = afi
    tops = {name: _top_lists(weights.nan_to_num(float("-inf")), top_n) for name, weights in systems.items()}
    fitted = {name: [not bool(weights[:, k].isnan().all()) for k in range(len(concepts))] for name, weights in systems.items()}

    # Concept maps and predictions, BLOCK images per pass.
    maps, predicted = [], []
    hint.fit_localizers([(c, top_fraction, "shapley") for c in concepts])  # all in one training pass
    with evaluation_mode(hint.model, "write_site", "images"), torch.no_grad():
        for block in tqdm(images.split(BLOCK), desc="concept maps", disable=not progress):
            logits, features = hint.logits_and_features(block)  # one forward pass for both
            size = tuple(features.shape[-2:])
            maps.append(torch.cat([hint.localize(block, c, top_fraction, size=size, features=features)
                                   for c in concepts], 1).cpu())
            predicted.append(torch.softmax(logits.float(), 1).max(1))
    maps = torch.cat(maps)  # N x K x h x w
    probability = torch.cat([p.values for p in predicted]).cpu()
    prediction = torch.cat([p.indices for p in predicted]).cpu()
    peaks, means = maps.flatten(2).amax(2), maps.flatten(2).mean(2)  # N x K

    # None where the objects are not given; else whether the predicted class is one of them
    recognized = [int(prediction[i]) in labels[i] if labels[i] else None for i in range(n_images)]
    if trees is not None:  # named on copies: the caller's trees stay as they were
        trees = [_tree_copy(tree) for tree in trees]
        label_with_concepts(trees, hint)
    through: Dict[int, List[dict]] = {}
    for i, tree in enumerate(trees or []):
        for node in tree.walk():
            if node.layer == hint.layer:
                through.setdefault(node.channel, []).append({"image": i, "share": round(float(node.share), 4)})
    shown = sorted({entry["neuron"] for name, lists in tops.items() for k, top in enumerate(lists) if fitted[name][k]
                    for entry in top} | set(through))

    # Files: templates, images, patches, data.
    out.mkdir(parents=True, exist_ok=True)
    assets = Path(__file__).with_name("site")
    for name in SITE_ASSETS:
        shutil.copyfile(assets / name, out / name)
    page = Template((assets / "page.html").read_text(encoding="utf-8"))
    for name, (kind, page_title) in SITE_PAGES.items():
        (out / name).write_text(page.substitute(kind=kind, title=page_title), encoding="utf-8")
    for folder in ("data", "img"):
        shutil.rmtree(out / folder, ignore_errors=True)
    (out / "img" / "images").mkdir(parents=True)
    (out / "img" / "patches").mkdir(parents=True)
    for i, picture in enumerate(pixels):
        _save_jpeg(picture, out / "img" / "images" / f"{i}.jpg")
    patch_values = {}
    if shown:
        stream = reference_images if reference_images is not None else images.split(BLOCK)
        patches = top_activating_patches(hint.model, hint.layer, stream, shown, k=n_patches, progress=progress)
        low = patches["patches"].flatten(2).amin(2)[..., None, None, None]
        high = patches["patches"].flatten(2).amax(2)[..., None, None, None]
        strips = ((patches["patches"] - low) / (high - low).clamp_min(1e-12))  # U x k x 3 x P x P, each in [0, 1]
        if strips.shape[-1] > MAX_PATCH_SIDE:
            strips = F.interpolate(strips.flatten(0, 1), size=(MAX_PATCH_SIDE, MAX_PATCH_SIDE), mode="bilinear",
                                   antialias=True).view(*strips.shape[:3], MAX_PATCH_SIDE, MAX_PATCH_SIDE)
        for neuron, strip, values in zip(shown, strips, patches["values"]):
            _save_jpeg(torch.cat(list(strip), dim=2), out / "img" / "patches" / f"{neuron}.jpg")
            patch_values[neuron] = _rounded(values)

    parents = _nearest_fitted(hierarchy, concepts)
    children = {c: [d for d in concepts if c in parents[d]] for c in concepts}
    lowest = {}  # each leaf class under a fitted concept -> the smallest fitted concept above it
    for concept in sorted(concepts, key=lambda c: -len(hierarchy.leaves_under(c))):
        for leaf in hierarchy.leaves_under(concept):
            lowest[leaf] = concept
    _write_data(out / "data" / "site.js", {
        "title": title or f"captum_hint explorer: {type(hint.model).__name__} {hint.layer}",
        "model": model_name or type(hint.model).__name__, "layer": hint.layer, "neurons": width, "images": n_images,
        "systems": list(systems), "top_n": top_n, "top_fraction": top_fraction, "seed": seed,
        "concepts": [{"id": ids[c], "name": c, "label": hierarchy.label(c), "parents": [ids[p] for p in parents[c]],
                      "children": [ids[d] for d in children[c]]} for c in concepts],
        "leaves": [[hierarchy.label(hierarchy.leaves[leaf]), ids[c]] for leaf, c in sorted(lowest.items())],
        "image_names": names, "recognized": recognized, "notes": list(notes),
        "multimodal": {str(n): [ids[c] for c in cs] for n, cs in hint.multimodal_neurons(n=top_n).items()},
    })

    intervals = hint.held_out_intervals(seed=seed)
    for k, concept in enumerate(concepts):
        leaves = set(hierarchy.leaves_under(concept))
        # highest peak first; saturated peaks (1.00) tie, so the larger mean comes first among them
        by_mean = means[:, k].argsort(descending=True)
        order = by_mean[peaks[by_mean, k].argsort(descending=True, stable=True)][:n_examples].tolist()
        lists = {name: tops[name][k] if fitted[name][k] else None for name in systems}
        sets = {name: {e["neuron"] for e in top} for name, top in lists.items() if top is not None}
        overlap = [{"systems": [a, b], "shared": sorted(sets[a] & sets[b]),
                    "jaccard": round(len(sets[a] & sets[b]) / len(sets[a] | sets[b]), 4)}
                   for i, a in enumerate(sets) for b in list(sets)[i + 1:]]
        _write_data(out / "data" / "concepts" / f"{ids[concept]}.js", {
            "id": ids[concept], "name": concept, "label": hierarchy.label(concept), "wnid": hierarchy.wnid(concept),
            "leaves": [hierarchy.label(hierarchy.leaves[leaf]) for leaf in sorted(leaves)],
            "scores": {name: _finite_or_none(values) for name, values in intervals[concept].items()},
            "top": lists, "overlap": overlap,
            "examples": [{"image": i, "peak": round(float(peaks[i, k]), 4), "mean": round(float(means[i, k]), 4),
                          "contains": bool(leaves & set(labels[i])),
                          "map": _rounded(maps[i, k], 3)} for i in order],
        })

    ranks = hint.scores_.argsort(0, descending=True).argsort(0) + 1  # D x K: 1 = the concept's top neuron
    claims: Dict[str, Dict[int, List[str]]] = {name: {} for name in systems}
    for name, lists in tops.items():
        for k, top in enumerate(lists):
            for entry in top if fitted[name][k] else ():
                claims[name].setdefault(entry["neuron"], []).append(ids[concepts[k]])
    for neuron in tqdm(range(width), desc="neuron pages", disable=not progress):
        _write_data(out / "data" / "neurons" / f"{neuron}.js", {
            "neuron": neuron, "phi": _finite_or_none(hint.scores_[neuron].tolist()), "rank": ranks[neuron].tolist(),
            "claims": {name: claims[name].get(neuron, []) for name in systems}, "patches": neuron in patch_values,
            "patch_values": patch_values.get(neuron), "images": through.get(neuron, []),
        })

    for i in range(n_images):
        _write_data(out / "data" / "images" / f"{i}.js", {
            "image": i, "name": names[i], "labels": [hierarchy.label(hierarchy.leaves[c]) for c in labels[i]],
            "recognized": recognized[i],
            "predicted": hierarchy.label(hierarchy.leaves[int(prediction[i])]) if int(prediction[i]) < len(hierarchy.leaves)
            else str(int(prediction[i])), "probability": round(float(probability[i]), 4),
            "maps": {ids[c]: _rounded(maps[i, k], 3) for k, c in enumerate(concepts)},
            "tree": None if trees is None else _tree_for_browser(trees[i], hint.layer, ids),
            "decision": None if trees is None else _decision_name(trees[i], hierarchy),
        })
    return out / "index.html"


def explore_model(out: Union[str, Path], spec, hint, samples: Sequence[dict], train_samples: Sequence[dict] = (), *,
                  sevec: bool = True, afi_concepts: Sequence[str] = (), afi_scenes: int = 16,
                  afi_iterations: int = 40, gap_top_k: int = 2, names: Optional[Sequence[str]] = None,
                  notes: Sequence[str] = (), seed: int = 0, progress: bool = True) -> Path:
    """The site of a fitted HINT on ``samples``, with gAP trees, SeVec and AfI fitted here.

    What the command line and the demo run. gAP decomposes each image's
    predicted class from the output down to HINT's layer
    (:func:`gap_layers_from`); SeVec is fitted on ``train_samples`` at HINT's
    layer (left out, with the reason on the index page, when the layer is not
    rectified: its binarization ``1[phi > 0]`` would be meaningless); AfI fits
    one occluder per concept of ``afi_concepts`` on ``afi_scenes`` stamp scenes.
    ``notes`` are shown on the index page, with what was left out and why.
    """
    from torch.utils.data import DataLoader

    from ..afi import GlobalFeatureOccluder, channel_importance, feature_importance
    from ..datasets import collate_samples, concept_scenes
    from ..gap import HierarchicalDecomposition
    from ..sevec import SemanticVectors

    unknown = [c for c in afi_concepts if hint.hierarchy.lookup(c) not in hint.concepts]
    if unknown:
        raise ValueError(f"afi_concepts: {unknown} are not concepts of the HINT ({hint.concepts})")
    images = torch.stack([s["image"] for s in samples])
    notes = list(notes)
    shape = tuple(images.shape[1:])
    layers = gap_layers_from(hint.model, hint.layer, shape)
    _say(f"gAP trees of {len(images)} images through {', '.join(layers)}")
    trees = HierarchicalDecomposition(hint.model, layers, shape, progress=progress).decompose(images, top_k=gap_top_k)
    vectors = None
    if sevec and train_samples:
        try:
            vectors = SemanticVectors(hint.model, hint.layer, hint.concepts, hint.hierarchy, progress=progress).fit(
                DataLoader(list(train_samples), batch_size=16, collate_fn=collate_samples))
        except ValueError as error:
            if not str(error).startswith("layer:"):
                raise
            notes.append(f"SeVec left out: {str(error).split(': ', 1)[1]}")
            _say(notes[-1])
    afi = {}
    for concept in afi_concepts:
        concept = hint.hierarchy.lookup(concept)
        leaves = set(hint.hierarchy.leaves_under(concept))
        scenes = torch.stack([s["image"] for s in concept_scenes(hint.hierarchy, concept, afi_scenes, seed,
                                                                   argument="afi_concepts")])
        occluder = GlobalFeatureOccluder(hint.model, max_iterations=afi_iterations, mean=spec.mean, std=spec.std,
                                         seed=seed, progress=progress).fit(scenes, leaves)
        afi[concept] = channel_importance(feature_importance(occluder, scenes[occluder.used_], hint.layer))
        _say(f"AfI occluder for {hint.hierarchy.label(concept)}: fitted on the {occluder.n_used_} of {len(scenes)} "
             f"scenes recognized (also after t), success {occluder.success_rate_:.2f}")
    # a sample's objects (boxed data sets, scenes), else its one label (an image folder)
    labels = [[int(c) for c in s["labels"]] if len(s.get("labels", ())) else [s["label"]] for s in samples]
    return write_site(out, hint, images, labels, pixels=spec.denormalize(images), names=names, trees=trees,
                      semantic_vectors=vectors, afi_importance=afi, seed=seed, notes=notes, progress=progress,
                      model_name=spec.name,
                      title=f"captum_hint explorer: {spec.name} {hint.layer}")
