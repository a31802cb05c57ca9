"""The explorer site (captum_hint.app.explore): its data, and the pages in headless Chromium."""

import re
import shutil

import pytest
import torch
from nets import TwoStageNet
from site_check import crawl, open_page, page_problems, read_data, start_chromium
from sklearn.metrics import f1_score, roc_auc_score
from torch.utils.data import DataLoader, TensorDataset

from captum_hint import HINT, ConceptHierarchy
from captum_hint.afi import GlobalFeatureOccluder, channel_importance, feature_importance
from captum_hint.app.explore import gap_layers_from, slugs, write_site
from captum_hint.gap import HierarchicalDecomposition
from captum_hint.hint.classifiers import weighted_f1, weighted_roc_auc
from captum_hint.sevec import SemanticVectors


@pytest.fixture(scope="module")
def fitted():
    net = TwoStageNet(classes=6).eval()
    hierarchy = ConceptHierarchy.from_paths(["animal/mammal/dog", "animal/mammal/cat", "animal/bird", "thing/car",
                                             "thing/cup", "thing/boat"])
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(48, 3, 16, 16, generator=generator), torch.arange(48) % 6
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    hint = HINT(net, "features.1", hierarchy, ["animal", "mammal", "bird", "thing"], saliency="gradient",
                shapley_kwargs={"n_permutations": 8}, progress=False).fit(loader)
    vectors = SemanticVectors(net, "features.1", ["animal", "mammal", "thing"], hierarchy, progress=False).fit(loader)
    with torch.no_grad():
        predicted = net(images).argmax(1)
    target = int(predicted.mode().values)
    recognized = images[predicted == target]
    occluder = GlobalFeatureOccluder(net, max_iterations=3, mean=(0, 0, 0), std=(1, 1, 1), seed=0).fit(recognized, {target})
    owner = [c for c in hint.concepts if target in hierarchy.leaves_under(c)][-1]
    afi = {owner: channel_importance(feature_importance(occluder, recognized, "features.1"))}
    trees = HierarchicalDecomposition(net, gap_layers_from(net, "features.1", (3, 16, 16)), (3, 16, 16)).decompose(
        images[:6], top_k=2)
    return {"net": net, "hint": hint, "images": images[:6], "labels": labels[:6], "vectors": vectors, "afi": afi,
            "trees": trees}


@pytest.fixture(scope="module")
def site(fitted, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    index = write_site(out, fitted["hint"], fitted["images"], [[int(label)] for label in fitted["labels"]],
                       trees=fitted["trees"], semantic_vectors=fitted["vectors"], afi_importance=fitted["afi"],
                       top_n=2, progress=False)
    return index


def test_gap_trees_end_at_the_hint_layer(fitted):
    assert gap_layers_from(fitted["net"], "features.1", (3, 16, 16)) == ["features.1", "features.4"]
    assert {node.layer for tree in fitted["trees"] for node in tree.walk()} == {"output", "features.1", "features.4"}


def test_concept_pages_carry_each_systems_top_neurons_and_their_overlap(site, fitted):
    hint, vectors = fitted["hint"], fitted["vectors"]
    (afi_concept, afi_weights), = fitted["afi"].items()
    for k, concept in enumerate(hint.concepts):
        page = read_data(site.parent / "data" / "concepts" / f"{concept}.js")
        assert [e["neuron"] for e in page["top"]["HINT"]] == hint.top_neurons(concept, 2).indices.tolist()
        if concept in vectors.concepts_:  # spatial vectors: a channel's loading sums its positions
            loading = vectors.vector(concept).view(4, -1).sum(1)
            assert [e["neuron"] for e in page["top"]["SeVec"]] == loading.topk(2).indices.tolist()
        else:
            assert page["top"]["SeVec"] is None
        if concept == afi_concept:
            assert [e["neuron"] for e in page["top"]["AfI"]] == afi_weights.topk(2).indices.tolist()
        else:
            assert page["top"]["AfI"] is None
        sets = {name: {e["neuron"] for e in top} for name, top in page["top"].items() if top}
        for entry in page["overlap"]:
            a, b = (sets[name] for name in entry["systems"])
            assert set(entry["shared"]) == a & b and entry["jaccard"] == pytest.approx(len(a & b) / len(a | b), abs=1e-4)
        assert len(page["overlap"]) == len(sets) * (len(sets) - 1) // 2
        # scores: the held-out values of the fit, inside their intervals
        for name, (value, low, high) in page["scores"].items():
            assert value == pytest.approx(hint.held_out_scores()[concept][name], abs=1e-4) and low <= value <= high
        # examples: the images with the highest map peak, their maps HINT's at the layer's size
        maps = hint.localize(fitted["images"], concept, 0.2, size=(16, 16))
        peaks = maps.flatten(1).amax(1)
        order = torch.tensor(sorted(range(6), key=lambda i: (-peaks[i].item(), -maps[i].mean().item())))
        assert [e["image"] for e in page["examples"]] == order[:4].tolist()
        assert torch.allclose(torch.tensor(page["examples"][0]["map"]), maps[page["examples"][0]["image"], 0], atol=6e-4)


def test_neuron_pages_show_phi_ranks_claims_and_trees(site, fitted):
    hint, trees = fitted["hint"], fitted["trees"]
    for neuron in range(4):
        page = read_data(site.parent / "data" / "neurons" / f"{neuron}.js")
        assert page["phi"] == pytest.approx(hint.scores_[neuron].tolist(), abs=1e-4)
        for k, concept in enumerate(hint.concepts):
            assert page["rank"][k] == 1 + int((hint.scores_[:, k] > hint.scores_[neuron, k]).sum())
            assert (concept in page["claims"]["HINT"]) == (neuron in hint.top_neurons(concept, 2).indices.tolist())
        through = [i for i, tree in enumerate(trees) for node in tree.walk()
                   if node.layer == "features.1" and node.channel == neuron]
        assert [e["image"] for e in page["images"]] == through


def test_image_pages_hold_the_named_tree_and_every_concepts_map(site, fitted):
    hint = fitted["hint"]
    page = read_data(site.parent / "data" / "images" / "0.js")
    assert set(page["maps"]) == set(hint.concepts) and page["labels"] == ["dog"]
    with torch.no_grad():
        predicted = fitted["net"](fitted["images"]).argmax(1)
    recognized = (predicted == fitted["labels"]).tolist()
    assert page["recognized"] == recognized[0] and read_data(site.parent / "data" / "site.js")["recognized"] == recognized
    assert page["tree"]["channel"] == fitted["trees"][0].channel
    lowest = [node for child in page["tree"]["children"] for node in child["children"]]
    assert lowest and all(node["neuron"] and node["layer"] == "features.1" for node in lowest)
    for node in lowest:  # named by HINT: its two best concepts
        assert [c for c, _ in node["concepts"]] == [c for c, _ in hint.concepts_of(node["channel"], 2)]
    # on copies: the caller's trees are not named
    assert all(node.concepts == [] for tree in fitted["trees"] for node in tree.walk())


def test_reference_patches_only_for_neurons_some_page_lists(fitted, tmp_path):
    hint = fitted["hint"]
    (afi_concept, weights), = fitted["afi"].items()
    write_site(tmp_path, hint, fitted["images"], afi_importance=fitted["afi"], top_n=1, progress=False)
    listed = {int(hint.top_neurons(c, 1).indices[0]) for c in hint.concepts} | {int(weights.argmax())}
    assert {int(p.stem) for p in (tmp_path / "img" / "patches").iterdir()} == listed
    assert len(list((tmp_path / "data" / "neurons").iterdir())) == 4  # every neuron has a page
    site = read_data(tmp_path / "data" / "site.js")
    assert site["systems"] == ["HINT", "AfI"] and site["image_names"] == [f"image {i}" for i in range(6)]


def test_the_model_is_left_as_it_was(fitted, tmp_path):
    net = fitted["net"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    try:
        with pytest.warns(UserWarning, match="write_site: the model is in train mode; it runs in eval mode here"):
            write_site(tmp_path, fitted["hint"], fitted["images"], trees=fitted["trees"], progress=False)
        assert net.training and all(m.training for m in net.modules())
        assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in net.modules())
        assert all(p.requires_grad for p in net.parameters())
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    finally:
        net.eval()


def test_bad_arguments_are_named(fitted, tmp_path):
    hint, images = fitted["hint"], fitted["images"]
    with pytest.raises(ValueError, match="labels: expected one list of classes per image"):
        write_site(tmp_path, hint, images, [[0]], progress=False)
    with pytest.raises(ValueError, match=r"labels: expected class indices in 0..5, got \[6\]"):
        write_site(tmp_path, hint, images, [[0], [6], [], [], [], []], progress=False)
    with pytest.raises(ValueError, match="hint: expected a fitted HINT"):
        write_site(tmp_path, HINT(fitted["net"], "features.1", hint.hierarchy, ["animal"]), images, progress=False)
    other = SemanticVectors(fitted["net"], "features.4", ["animal"], hint.hierarchy, progress=False)
    other.vectors_ = torch.ones(1, 4)
    with pytest.raises(ValueError, match="semantic_vectors: expected them fitted at HINT's layer"):
        write_site(tmp_path, hint, images, semantic_vectors=other, progress=False)
    with pytest.raises(ValueError, match=r"afi_importance: \['car'\] are not concepts"):
        write_site(tmp_path, hint, images, afi_importance={"car": torch.ones(4)}, progress=False)
    with pytest.raises(ValueError, match="afi_importance\\['animal'\\]"):
        write_site(tmp_path, hint, images, afi_importance={"animal": torch.ones(5)}, progress=False)
    with pytest.raises(ValueError, match="pixels: expected RGB values in \\[0, 1\\]"):
        write_site(tmp_path, hint, images, pixels=images, progress=False)


def test_concept_ids_are_file_safe_and_distinct():
    assert slugs(["dog.n.01", "a/b", "a_b", "c d"]) == {"dog.n.01": "dog.n.01", "a/b": "a_b-1", "a_b": "a_b-2",
                                                        "c d": "c_d"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_scores_equal_scikit_learn_on_repeated_rows(seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randint(-3, 4, (40,), generator=generator).float()  # many ties
    truth = torch.rand(40, generator=generator) < 0.4
    counts = torch.randint(0, 4, (40,), generator=generator)
    repeated = torch.repeat_interleave(torch.arange(40), counts)
    weights = torch.stack([counts.float(), torch.ones(40)])
    auc = weighted_roc_auc(logits, truth, weights)
    assert auc[0].item() == pytest.approx(roc_auc_score(truth[repeated].numpy(), logits[repeated].numpy()))
    assert auc[1].item() == pytest.approx(roc_auc_score(truth.numpy(), logits.numpy()))
    f1 = weighted_f1(logits, truth, weights)
    assert f1[0].item() == pytest.approx(f1_score(truth[repeated].numpy(), (logits[repeated] > 0).numpy()))


def test_held_out_intervals_bracket_the_fits_scores_and_are_seeded(fitted):
    hint = fitted["hint"]
    first, again, other = hint.held_out_intervals(seed=3), hint.held_out_intervals(seed=3), hint.held_out_intervals(seed=4)
    assert first == again and first != other
    for concept, scores in first.items():
        for name, (value, low, high) in scores.items():
            assert value == pytest.approx(hint.held_out_scores()[concept][name]) and low <= value <= high


# ---------------------------------------------------------------------------------------------- in the browser
@pytest.fixture(scope="module")
def chromium():
    driver = start_chromium()
    yield driver
    driver.quit()


def test_every_page_draws_without_console_errors_and_every_link_resolves(site, chromium):
    visited, problems = crawl(chromium, site)
    assert problems == []
    pages = {re.sub(r"\?.*", "", url.rsplit("/", 1)[1]) for url in visited}
    assert pages == {"index.html", "concept.html", "neuron.html", "image.html"}
    assert len(visited) == 1 + 4 + 4 + 6  # index, every concept, neuron and image


def test_search_finds_a_concept_a_class_and_a_neuron(site, chromium):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(chromium, site.as_uri())
    box = chromium.find_element(By.ID, "search")
    for query, expected in (("mamm", "concept.html?c=mammal"), ("cat", "concept.html?c=mammal"),
                            ("#3", "neuron.html?n=3"), ("image 5", "image.html?i=5")):
        box.clear()
        box.send_keys(query)
        hrefs = [a.get_attribute("href") for a in chromium.find_elements(By.CSS_SELECTOR, "#results a")]
        assert hrefs and hrefs[0].endswith(expected), (query, hrefs)
    box.clear()
    box.send_keys("bird", Keys.ENTER)  # Enter opens the first result
    assert open_page(chromium, chromium.current_url) == "1" and chromium.current_url.endswith("concept.html?c=bird")


def test_keyboard_reaches_the_search_and_a_narrow_window_does_not_scroll_sideways(site, chromium):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_page(chromium, site.as_uri())
    ActionChains(chromium).send_keys(Keys.TAB).perform()
    assert chromium.switch_to.active_element.text == "Skip to content"
    ActionChains(chromium).send_keys(Keys.TAB, Keys.TAB).perform()
    assert chromium.switch_to.active_element.get_attribute("id") == "search"
    chromium.set_window_size(360, 800)
    try:
        for page in ("index.html", "concept.html?c=animal", "neuron.html?n=1", "image.html?i=0"):
            assert open_page(chromium, f"{site.parent.as_uri()}/{page}") == "1"
            assert chromium.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), page
    finally:
        chromium.set_window_size(1200, 900)


@pytest.mark.parametrize("breakage", ["missing neuron data", "bad data file", "missing image", "unknown concept"])
def test_the_browser_check_fails_on_a_page_broken_on_purpose(site, chromium, tmp_path, breakage):
    broken = tmp_path / "site"
    shutil.copytree(site.parent, broken)
    if breakage == "missing neuron data":
        (broken / "data" / "neurons" / "2.js").unlink()
        page = "neuron.html?n=2"
    elif breakage == "bad data file":
        path = broken / "data" / "concepts" / "bird.js"
        path.write_text(path.read_text().replace('"top":', '"top":{'))  # a syntax error
        page = "concept.html?c=bird"
    elif breakage == "missing image":
        (broken / "img" / "images" / "3.jpg").unlink()
        page = "image.html?i=3"
    else:
        page = "concept.html?c=fish"
    problems = page_problems(chromium, f"{broken.as_uri()}/{page}")
    assert problems and all(page in problem for problem in problems), problems
    if breakage != "unknown concept":  # reachable by links: the crawl finds it too
        _, problems = crawl(chromium, broken / "index.html")
        assert any(page in problem for problem in problems), problems
