"""Data sets: stamp scenes on the real stamps, and the real formats on small fixtures."""

import numpy as np
import pytest
import torch
from PIL import Image

from captum_hint.core.boxes import masks_to_boxes
from captum_hint.datasets import (CUB200, DISTRACTOR_CATEGORIES, RECOGNIZED_SCENES, VOC2007, VOC_CONCEPTS, ImageNetBoxes, StampScenes,
                                  WnidImageFolder, collate_samples, fetch_stamps, stamp_table)
from captum_hint.concepts.hierarchy import ConceptHierarchy

H = ConceptHierarchy.imagenet()


def test_stamp_table_is_consistent():
    rows = stamp_table()
    assert len(rows) == len({r["path"] for r in rows}) >= 130
    for row in rows:
        assert row["label"] in H.leaves_under(row["via"])
        assert H.leaves[row["label"]] == row["imagenet"]
        if row["path"].startswith("animals"):
            assert row["label"] in H.leaves_under("animal.n.01"), row
        elif row["path"].startswith("vehicles"):
            assert row["label"] in H.leaves_under("artifact.n.01"), row
        else:  # distractors: food, plants, tools, ... are never animals
            assert row["path"].startswith(DISTRACTOR_CATEGORIES) and row["label"] not in H.leaves_under("animal.n.01")
        assert "cartoon" not in row["path"] and row["path"].endswith(".png")


@pytest.fixture(scope="module")
def scenes():
    return StampScenes("test", n_scenes=6, objects=(1, 3), size=96, seed=3)


def test_stamps_are_fetched_from_debian_into_an_empty_folder(tmp_path):
    root = fetch_stamps(tmp_path / "stamps")
    paths = [row["path"] for row in stamp_table()]
    assert root == tmp_path / "stamps" and all((root / path).is_file() for path in paths)
    assert sorted(str(f.relative_to(root)) for f in root.rglob("*.png")) == sorted(paths)  # only the curated photos
    assert fetch_stamps(root) == root  # present: nothing is fetched again


def test_stamp_scenes_structure(scenes):
    for sample in scenes:
        k = len(sample["labels"])
        assert 1 <= k <= 3
        assert sample["image"].shape == (3, 96, 96) and sample["masks"].shape == (k, 96, 96)
        assert torch.equal(sample["boxes"], masks_to_boxes(sample["masks"]))
        assert not (sample["masks"].sum(0) > 1).any(), "occluded pixels belong to one object only"
        areas = sample["masks"].flatten(1).sum(1)
        assert sample["label"] == sample["labels"][areas.argmax()]


def test_stamp_scenes_are_deterministic(scenes):
    again = StampScenes("test", n_scenes=6, objects=(1, 3), size=96, seed=3)
    other = StampScenes("test", n_scenes=6, objects=(1, 3), size=96, seed=4)
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(scenes, again))
    assert not all(torch.equal(a["image"], b["image"]) for a, b in zip(scenes, other))


def test_iterating_scenes_in_threads_equals_indexing():
    scenes = StampScenes("train", n_scenes=11, objects=(1, 3), size=64, seed=5)  # more than the look-ahead
    iterated, indexed = list(scenes), [scenes[i] for i in range(len(scenes))]
    assert len(iterated) == 11
    for a, b in zip(iterated, indexed):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) if torch.is_tensor(a[key]) else a[key] == b[key] for key in a)


def test_stamp_split_is_by_stamp():
    train, test = StampScenes("train", 1), StampScenes("test", 1)
    train_paths, test_paths = {s["path"] for s in train.stamps}, {s["path"] for s in test.stamps}
    assert not train_paths & test_paths
    assert train_paths | test_paths == {r["path"] for r in stamp_table()}
    assert StampScenes("test", 1, split_seed=1).stamps != test.stamps


def test_stamp_masks_come_from_the_alpha_channel():
    scenes = StampScenes("train", n_scenes=1, objects=(1, 1), size=128, seed=0, feather=0)
    sample = scenes[0]
    rng = np.random.default_rng([0, 0, False])  # the scene's own draws, replayed
    background = scenes._backgrounds[rng.integers(len(scenes._backgrounds))]
    side = int(min(background.shape[:2]) * rng.uniform(0.4, 1.0))
    rng.integers(background.shape[0] - side + 1), rng.integers(background.shape[1] - side + 1)
    rng.uniform(0.55, 1.15, size=3), rng.uniform(0.7, 1.2)  # the tint
    rng.integers(1, 2)
    pick = rng.choice(len(scenes.stamps), size=1, replace=False, p=scenes._weights)[0]
    stamp = scenes._cutout(scenes.stamps[pick]["path"])
    longest = 128 * rng.uniform(0.35, 0.65)
    scale = longest / max(stamp.size)
    width, height = max(1, round(stamp.width * scale)), max(1, round(stamp.height * scale))
    alpha = np.array(stamp.resize((width, height), Image.BILINEAR).split()[3]) > 127
    if rng.random() < 0.5:
        alpha = alpha[:, ::-1]
    x, y = int(rng.integers(0, 128 - width + 1)), int(rng.integers(0, 128 - height + 1))
    expected = torch.zeros(128, 128, dtype=torch.bool)
    expected[y : y + height, x : x + width] = torch.from_numpy(alpha.copy())
    assert torch.equal(sample["masks"][0], expected)
    assert sample["labels"].tolist() == [scenes.stamps[pick]["label"]]
    # feathering only softens the edge: the mask barely moves
    soft = StampScenes("train", n_scenes=1, objects=(1, 1), size=128, seed=0, feather=1.5)[0]["masks"][0]
    assert (soft & expected).sum() / (soft | expected).sum() > 0.9


def test_distractors_are_extra_objects_outside_the_categories():
    scenes = StampScenes("test", n_scenes=12, objects=(1, 1), size=96, seed=0, categories=("animals",),
                         distractors=DISTRACTOR_CATEGORIES, n_distractors=(2, 2))
    main_labels = {r["label"] for r in scenes.stamps}
    assert all(r["path"].startswith(DISTRACTOR_CATEGORIES) for r in scenes.distractor_stamps)
    train = StampScenes("train", 1, categories=("animals",), distractors=DISTRACTOR_CATEGORIES)
    assert not {r["path"] for r in train.distractor_stamps} & {r["path"] for r in scenes.distractor_stamps}
    animal = set(H.leaves_under("animal.n.01"))
    for sample in (scenes[i] for i in range(len(scenes))):
        assert sample["label"] in main_labels and sample["label"] in animal  # the label is the main object's
        assert len(sample["labels"]) == len(sample["masks"]) == len(sample["boxes"])
        assert 2 <= len(sample["labels"]) <= 3  # 1 animal + 2 distractors (one may be fully hidden)
        assert sum(int(label) in animal for label in sample["labels"]) == 1
        assert not (sample["masks"].sum(0) > 1).any()  # occlusion: every pixel belongs to one object


def test_a_mean_colour_background_is_zero_input_outside_the_objects():
    scenes = StampScenes("test", n_scenes=4, objects=(1, 1), size=128, seed=0, **RECOGNIZED_SCENES)
    assert scenes.background == "mean" and not scenes.distractor_stamps
    for sample in (scenes[i] for i in range(len(scenes))):
        outside = ~torch.nn.functional.max_pool2d(sample["masks"].float()[None], 9, 1, 4)[0].bool().any(0)
        # the mean colour, rounded to 8 bits, normalized: within half a grey level of 0 (but for the
        # faint pixels of a stamp's half-transparent fringe or shadow)
        background = sample["image"][:, outside].abs().amax(0) < 0.5 / 255 / min(scenes.std) + 1e-6
        assert outside.sum() > 1000 and background.float().mean() > 0.95  # a texture: about none
        assert sample["image"][:, sample["masks"][0]].abs().mean() > 0.1  # the object is not the background


def test_stamp_errors():
    with pytest.raises(ValueError, match="split: expected 'train' or 'test'"):
        StampScenes("val")
    with pytest.raises(ValueError, match="categories: no stamp matches"):
        StampScenes(categories=("nothing",))
    with pytest.raises(ValueError, match="distractors: no stamp matches"):
        StampScenes(distractors=("nothing",))
    with pytest.raises(ValueError, match="feather: expected a value in"):
        StampScenes(feather=-1)
    with pytest.raises(ValueError, match="background: expected 'texture' or 'mean', got 'grey'"):
        StampScenes(background="grey")


def _voc_xml(path, width, height, objects):
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, (x1, y1, x2, y2) in objects
    )
    path.write_text(f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>{body}</annotation>")


def _photo(path, width, height):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def test_imagenet_val_layout(tmp_path):
    wnids = [H.wnid(leaf) for leaf in H.leaves]
    _photo(tmp_path / "ILSVRC2012_val_00000001.JPEG", 200, 100)
    _voc_xml(tmp_path / "ILSVRC2012_val_00000001.xml", 200, 100, [("n01440764", (11, 21, 110, 80))])
    sample = ImageNetBoxes(tmp_path, wnids, size=100)[0]
    assert sample["label"] == 0 and sample["labels"].tolist() == [0]
    # 1-based inclusive VOC coordinates -> 0-based, scaled by 100/200 and 100/100
    torch.testing.assert_close(sample["boxes"], torch.tensor([[5.0, 20.0, 54.5, 79.0]]))
    assert sample["image"].shape == (3, 100, 100) and not sample["masks"].any()
    _voc_xml(tmp_path / "ILSVRC2012_val_00000001.xml", 200, 100, [("n99999999", (1, 1, 2, 2))])
    with pytest.raises(ValueError, match=r"wnids \['n99999999'\] are not classes"):
        ImageNetBoxes(tmp_path, wnids)[0]


def test_cub_layout(tmp_path):
    base = tmp_path / "CUB_200_2011"
    (base / "images" / "001.Black_footed_Albatross").mkdir(parents=True)
    (tmp_path / "segmentations" / "001.Black_footed_Albatross").mkdir(parents=True)
    names = ["001.Black_footed_Albatross/a_1.jpg", "001.Black_footed_Albatross/a_2.jpg"]
    for name in names:
        _photo(base / "images" / name, 40, 20)
        segmentation = np.zeros((20, 40), dtype=np.uint8)
        segmentation[5:10, 10:30] = 255
        Image.fromarray(segmentation).save(tmp_path / "segmentations" / name.replace(".jpg", ".png"))
    (base / "images.txt").write_text("1 " + names[0] + "\n2 " + names[1] + "\n")
    (base / "bounding_boxes.txt").write_text("1 10.0 5.0 20.0 5.0\n2 0.0 0.0 40.0 20.0\n")
    (base / "train_test_split.txt").write_text("1 1\n2 0\n")
    test = CUB200(tmp_path, split="test", size=40)
    assert len(test) == 1 and len(CUB200(tmp_path, split="all", size=40)) == 2
    train = CUB200(tmp_path, split="train", size=40)[0]
    bird = H.leaves_under("bird.n.01")[0]
    assert train["label"] == bird and train["labels"].tolist() == [bird]
    torch.testing.assert_close(train["boxes"], torch.tensor([[10.0, 10.0, 30.0, 20.0]]))  # y scaled x2
    expected = torch.zeros(40, 40, dtype=torch.bool)
    expected[10:20, 10:30] = True
    assert torch.equal(train["masks"][0], expected)


def test_voc_layout(tmp_path):
    for folder in ["Annotations", "JPEGImages", "SegmentationClass", "ImageSets/Segmentation"]:
        (tmp_path / folder).mkdir(parents=True)
    _photo(tmp_path / "JPEGImages" / "000001.jpg", 50, 50)
    _voc_xml(tmp_path / "Annotations" / "000001.xml", 50, 50, [("dog", (1, 1, 25, 50)), ("person", (26, 1, 50, 50))])
    classes = np.zeros((50, 50), dtype=np.uint8)
    classes[:, :25] = VOC2007.CLASSES.index("dog") + 1
    classes[:, 25:] = VOC2007.CLASSES.index("person") + 1
    classes[0, 0] = 255  # VOC's "void" border
    palette = Image.fromarray(classes, mode="P")
    palette.putpalette([0, 0, 0] * 256)
    palette.save(tmp_path / "SegmentationClass" / "000001.png")
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("000001\n")
    sample = VOC2007(tmp_path, image_set="Segmentation/val", size=50)[0]
    dog, person = H.leaves_under("dog.n.01")[0], H.leaves_under("person.n.01")[0]
    assert sample["labels"].tolist() == [dog, person] and sample["label"] == dog
    assert sample["masks"][0, 1:, :25].all() and not sample["masks"][0, :, 25:].any() and not sample["masks"][0, 0, 0]
    assert sample["masks"][1, :, 25:].all()
    torch.testing.assert_close(sample["boxes"][1], torch.tensor([25.0, 0.0, 49.0, 49.0]))


def test_voc_concepts_are_in_the_imagenet_hierarchy():
    for name, concept in VOC_CONCEPTS.items():
        assert H.leaves_under(concept), name


def test_wnid_image_folder_and_collate(tmp_path):
    wnids = [H.wnid(leaf) for leaf in H.leaves]
    for wnid, count in [("n01440764", 2), ("n01443537", 1)]:
        (tmp_path / wnid).mkdir()
        for i in range(count):
            _photo(tmp_path / wnid / f"{i}.png", 30, 20)
    data = WnidImageFolder(tmp_path, wnids, size=32)
    assert [data[i]["label"] for i in range(len(data))] == [0, 0, 1]
    batch = collate_samples([data[0], data[2]])
    assert batch["image"].shape == (2, 3, 32, 32) and batch["label"].tolist() == [0, 1]
    (tmp_path / "not_a_wnid").mkdir()
    with pytest.raises(ValueError, match=r"sub-folders \['not_a_wnid'\] are not wnids"):
        WnidImageFolder(tmp_path, wnids)


def test_concept_cells_mark_the_grid_cells_any_pixel_of_an_object_falls_in():
    from captum_hint.datasets import concept_cells

    first, second = torch.zeros(2, 4, 4, dtype=torch.bool), torch.zeros(1, 4, 4, dtype=torch.bool)
    first[0, 1, 1] = True  # class 0, in cell (0, 0) of the 2 x 2 grid
    first[1, 2:, 1:3] = True  # class 2, in cells (1, 0) and (1, 1)
    second[0, 0, 3] = True  # class 1, in cell (0, 1)
    batch = {"masks": [first, second], "labels": [torch.tensor([0, 2]), torch.tensor([1])]}
    membership = torch.tensor([[True, True, False], [False, False, True]])  # concept 0: classes 0, 1; concept 1: 2
    cells = concept_cells(batch, membership, (2, 2))
    assert cells.shape == (2, 2, 2, 2)
    assert cells[0, 0].tolist() == [[True, False], [False, False]]
    assert cells[0, 1].tolist() == [[False, False], [True, True]]
    assert cells[1, 0].tolist() == [[False, True], [False, False]] and not cells[1, 1].any()
    empty = {"masks": [torch.zeros(0, 4, 4, dtype=torch.bool)], "labels": [torch.zeros(0, dtype=torch.long)]}
    assert not concept_cells(empty, membership, (2, 2)).any()
    with pytest.raises(ValueError, match="one mask per object label"):
        concept_cells({"masks": [first], "labels": [torch.tensor([0])]}, membership, (2, 2))
