"""The captum-hint command line, run for real on small settings."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from captum_hint.app.cli import build_parser, main


def test_help_explains_every_option(capsys):
    parser = build_parser()
    for command in ["demo", "run", "evaluate"]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        sub = parser._subparsers._group_actions[0].choices[command]
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{command} {action.option_strings} has no help"
                assert action.option_strings[-1] in text


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "captum_hint", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "demo" in result.stdout and "evaluate" in result.stdout


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["demo", "--out", str(out), "--train-scenes", "24", "--test-scenes", "8", "--afi-iterations", "2",
                 "--conductance-images", "2"]) == 0
    return out


def test_demo_writes_a_complete_report(demo_report):
    index = (demo_report / "index.html").read_text()
    links = re.findall(r"(?:src|href)='([^']+)'", index)
    assert {"hierarchy.png", "associations.png", "overlays.png", "layer_f1.png", "rankings_maxboxacc.png",
            "rankings_pxap.png", "saliency_methods.png", "reference_patches.png", "metrics.json", "scores.csv"} <= set(links)
    for link in links:
        assert not Path(link).is_absolute() and (demo_report / link).is_file(), link
    metrics = json.loads((demo_report / "metrics.json").read_text())
    assert metrics["model"] == "efficientnet-lite0" and len(metrics["layer_f1"]) == 4
    methods = {row["method"] for row in metrics["wsol"]}
    assert methods == {"HINT (shapley)", "HINT (coef)", "HINT (random (seed 0))", "HINT (random (seed 1))",
                       "HINT (random (seed 2))", "HINT (LayerConductance)", "HINT (NetDissect)", "Grad-CAM",
                       "centre Gaussian", "full image"}
    for method in methods - {"Grad-CAM", "centre Gaussian", "full image"}:
        assert sorted(r["fraction"] for r in metrics["wsol"] if r["method"] == method) == [0.1, 0.2, 0.4, 0.8]
    for row in metrics["wsol"]:  # every figure with its interval
        assert row["maxboxacc_v2_low"] <= row["maxboxacc_v2"] <= row["maxboxacc_v2_high"]
    assert {row["method"] for row in metrics["saliency_methods"]["table"]} == {
        "HINT gradient", "HINT gradient_x_input", "HINT guided_backprop", "HINT smoothgrad", "HINT integrated_gradients"}
    assert set(metrics["held_out"]) == set(metrics["concepts"])
    header = (demo_report / "scores.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "neuron" and header[1:] == metrics["concepts"]
    assert len((demo_report / "scores.csv").read_text().splitlines()) == 1 + 112


def test_the_demos_explorer_site_draws_every_page_in_chromium(demo_report):
    from site_check import crawl, start_chromium

    assert "site/index.html" in (demo_report / "index.html").read_text()
    driver = start_chromium()
    try:
        visited, problems = crawl(driver, demo_report / "site" / "index.html")
    finally:
        driver.quit()
    concepts = json.loads((demo_report / "metrics.json").read_text())["concepts"]
    assert problems == [] and len(visited) == 1 + len(concepts) + 112 + 8  # index, concepts, neurons, test scenes


def test_explore_writes_a_site_of_a_saved_hint(demo_report, tmp_path):
    from site_check import read_data

    out = tmp_path / "site"
    assert main(["explore", "--hint", str(demo_report / "hint"), "--images", "3", "--train-scenes", "8",
                 "--afi", "bird", "--afi-iterations", "2", "--out", str(out)]) == 0
    site = read_data(out / "data" / "site.js")
    assert site["systems"] == ["HINT", "AfI"] and site["neurons"] == 112 and len(site["image_names"]) == 3
    assert any(note.startswith("SeVec left out: '_blocks.10' gives negative values") for note in site["notes"])
    assert len(list((out / "data" / "neurons").iterdir())) == 112
    bird = read_data(out / "data" / "concepts" / "bird.n.01.js")
    assert len(bird["top"]["AfI"]) == 10 and read_data(out / "data" / "concepts" / "animal.n.01.js")["top"]["AfI"] is None
    listed = {e["neuron"] for name in ("HINT", "AfI") for e in bird["top"][name]}
    patches = {int(p.stem) for p in (out / "img" / "patches").iterdir()}
    assert listed <= patches and len(patches) < 112  # only for neurons some page lists


def test_explore_refuses_an_afi_concept_outside_the_hint(demo_report, tmp_path, capsys):
    assert main(["explore", "--hint", str(demo_report / "hint"), "--images", "2", "--afi", "fish", "--no-sevec",
                 "--out", str(tmp_path / "site")]) == 2
    assert "afi_concepts: ['fish'] are not concepts of the HINT" in capsys.readouterr().err


def test_evaluate_a_saved_hint(demo_report, tmp_path, capsys):
    assert main(["evaluate", "--hint", str(demo_report / "hint"), "--limit", "4", "--fractions", "0.2",
                 "--rankings", "shapley", "--concepts", "whole.n.02", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {row["method"] for row in metrics["wsol"]} == {"HINT (shapley)", "Grad-CAM", "centre Gaussian", "full image"}
    assert "MaxBoxAccV2" in capsys.readouterr().out


def test_run_on_an_image_folder(tmp_path, photo_set):
    import numpy as np
    from PIL import Image

    from captum_hint.concepts.hierarchy import ConceptHierarchy

    h = ConceptHierarchy.imagenet()
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    for i, wnid in enumerate(["n02123045", "n02085620", "n07920052"]):  # tabby, chihuahua, espresso
        (tmp_path / "data" / wnid).mkdir(parents=True)
        for j in range(3):
            pixels = (photo_set[3 * i + j].permute(1, 2, 0).numpy() * std + mean).clip(0, 1)
            Image.fromarray((pixels * 255).astype("uint8")).save(tmp_path / "data" / wnid / f"{j}.png")
    out = tmp_path / "out"
    assert main(["run", "--data", str(tmp_path / "data"), "--concepts", "animal", "whole.n.02",
                 "--saliency", "gradient", "--batch-size", "9", "--out", str(out)]) == 0
    assert (out / "index.html").is_file() and (out / "hint" / "tensors.pt").is_file()
    assert json.loads((out / "metrics.json").read_text())["images"] == 9
    assert h.lookup("animal") == "animal.n.01"
    # the explorer on the same folder: pages for 3 of its images, named by their files
    site = tmp_path / "site"
    assert main(["explore", "--hint", str(out / "hint"), "--data", str(tmp_path / "data"), "--images", "3",
                 "--train-scenes", "6", "--afi", "--out", str(site)]) == 0
    from site_check import read_data

    data = read_data(site / "data" / "site.js")
    assert data["image_names"] == ["0.png", "0.png", "0.png"] and data["systems"] == ["HINT"]
    assert sorted(read_data(site / "data" / "images" / f"{i}.js")["labels"][0] for i in range(3)) == sorted(
        h.label(w) for w in ("n02123045", "n02085620", "n07920052"))  # one image of each folder


# ---------------------------------------------------------------- review defect 7
def _never_load(*args, **kwargs):
    raise AssertionError("the model was loaded before the arguments were checked")


@pytest.mark.parametrize("argv, message", [
    (["run", "--data", ".", "--concepts", "animal", "--threshold", "1.5"],
     r"argument --threshold: expected a value in \(0.0, 1.0\), got 1.5"),
    (["evaluate", "--hint", "no-such-folder"], "argument --hint: no-such-folder holds no saved HINT"),
    (["evaluate"], "the following arguments are required: --hint"),
    (["demo", "--train-scenes", "0"], "argument --train-scenes: expected an integer in 1..20000, got 0"),
    (["evaluate", "--hint", "HINT", "--fractions", "nan"], "argument --fractions: expected a finite number, got nan"),
    (["evaluate", "--hint", "HINT", "--data", "voc"], "--root is needed for --data voc"),
])
def test_bad_arguments_give_one_line_before_any_model_loads(argv, message, demo_report, monkeypatch, capsys):
    """Defect 7: user errors printed a traceback, some only after loading the model."""
    monkeypatch.setattr("captum_hint.datasets.models.load_model", _never_load)
    monkeypatch.setattr("captum_hint.datasets.load_model", _never_load)
    argv = [str(demo_report / "hint") if a == "HINT" else a for a in argv]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and re.search(message, error), error


def test_user_error_inside_a_command_is_one_line(tmp_path, demo_report, capsys):
    (tmp_path / "hint").mkdir()
    for name in ("hint.json", "tensors.pt"):
        (tmp_path / "hint" / name).write_bytes((demo_report / "hint" / name).read_bytes()[:100])
    assert main(["evaluate", "--hint", str(tmp_path / "hint"), "--limit", "2"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith("captum-hint: error: path: ") and "is not a readable saved HINT" in error


def test_decompose_writes_pyramids_trees_and_an_index(tmp_path, demo_report, photo_set):
    import numpy as np
    from PIL import Image

    from captum_hint.gap import load_tree

    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    pixels = (photo_set[1].permute(1, 2, 0).numpy() * std + mean).clip(0, 1)  # chelsea the cat
    Image.fromarray((pixels * 255).astype("uint8")).save(tmp_path / "cat.png")
    out = tmp_path / "gap"
    assert main(["decompose", str(tmp_path / "cat.png"), "--top-k", "2", "--target", "mammal",
                 "--hint", str(demo_report / "hint"), "--out", str(out)]) == 0
    tree = load_tree(out / "cat.json")
    assert tree.channel == -1 and len(tree.children) == 2  # a concept decision
    named = [node for node in tree.walk() if node.concepts]
    assert named and all(node.layer == "_blocks.10" for node in named)
    assert (out / "cat.png").stat().st_size > 10_000 and "cat.json" in (out / "index.html").read_text()


def test_decompose_checks_its_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["decompose", str(tmp_path / "missing.png")])
    assert stop.value.code == 2 and "missing.png is not a file" in capsys.readouterr().err


def test_sevec_writes_figures_and_metrics(tmp_path):
    out = tmp_path / "sevec"
    assert main(["sevec", "--train-scenes", "32", "--test-scenes", "12", "--representation", "pooled",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["layer"] == "_avg_pooling" and metrics["layer_input"] is True
    assert len(metrics["per_concept"]) == len(metrics["concepts"]) >= 3
    assert all(0 <= row["diversity D_c"] <= 1 for row in metrics["per_concept"])
    for name in ("retrieval.png", "relevance.png", "tsne.png"):
        assert (out / name).stat().st_size > 5_000 and name in (out / "index.html").read_text()


def test_afi_writes_its_report(tmp_path):
    out = tmp_path / "afi"
    assert main(["afi", "--class", "bird", "--scenes", "6", "--iterations", "2", "--probe-images", "3",
                 "--probe-concepts", "bird", "mammal", "--impression-steps", "2", "--layers", "_blocks.4",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["class"] == "bird.n.01" and metrics["used"] + metrics["dropped"] == 6
    importance = metrics["concept_importance"]
    assert set(importance) == {"bird", "mammal"} and all(v >= 0 for v in importance.values())
    assert sum(importance.values()) in (pytest.approx(0.0), pytest.approx(1.0))  # all MMD <= 0 gives zeros
    for name in ("occluder.png", "meta_detectors.png", "impression.png"):
        assert (out / name).stat().st_size > 5_000


def test_afi_checks_its_arguments(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["afi", "--lam", "-1"])
    assert stop.value.code == 2 and "argument --lam: expected a value in [0.0, inf), got -1.0" in capsys.readouterr().err


def test_ground_truth_writes_its_json_and_page(tmp_path, fresh_cache):
    out = tmp_path / "truth"
    assert main(["ground-truth", "--variants", "bottleneck", "--seeds", "3", "--train-scenes", "48", "--epochs", "2",
                 "--fit-scenes", "32", "--test-scenes", "32", "--occluder-iterations", "3", "--retrain-permutations", "2",
                 "--multimodal", "mammal", "fruit", "--out", str(out)]) == 0
    data = json.loads((out / "ground_truth.json").read_text())
    (model,) = data["models"]
    assert (model["variant"], model["seed"]) == ("bottleneck", 3) and model["config"]["epochs"] == 2
    assert list(model["planted"]) == ["bird", "mammal", "fruit", "vehicle"] and len(set(model["planted"].values())) == 4
    for name, entry in model["truth"]["classes"].items():
        assert entry["channel"] == model["planted"][name] and 0 <= entry["mask_iou"] <= 1
        assert entry["holds"] == (entry["roc_auc"] >= 0.8 and entry["mask_pxap"] >= 0.5
                                  and entry["ablation_ratio"] >= 2)
    methods = {row["method"] for row in model["ranks"]}
    assert {"HINT (shapley, gradient)", "HINT (shapley, gradient_x_input)", "SeVec (vector)", "gAP (chosen children)",
            "TCAV (CAV)", "LayerConductance", "NetDissect", "Grad-CAM weights"} <= methods
    for row in model["ranks"]:
        assert 1 <= row["rank"] <= 16 or (math.isnan(row["rank"]) and row["error"])
    (shared, classes), = model["truth"]["multimodal"].items()
    assert classes["concepts"] == ["mammal", "fruit"] and int(shared) not in model["planted"].values()
    for subset, target in (("every class", "planted"), ("multimodal channel", "multimodal")):
        for table_row in data["tables"]["bottleneck"][subset]:
            ranks = [r["rank"] for r in model["ranks"] if r["target"] == target and (
                r["method"] == table_row["method"] or (table_row["method"] == "random" and r["method"].startswith("random")))]
            finite = [r for r in ranks if not math.isnan(r)]
            assert table_row["n"] == len(finite) and table_row["failed"] == len(ranks) - len(finite)
            if finite:
                assert table_row["mean_rank"] == pytest.approx(sum(finite) / len(finite))
    assert {r["concept"] for r in model["ranks"] if r["target"] == "multimodal"} == {"mammal", "fruit"}
    assert set(model["multimodal"]) == {"HINT (gradient)", "HINT (gradient_x_input)"}
    for entry in model["multimodal"].values():
        assert entry["found"] == ({"mammal", "fruit"} <= set(entry["listed"].get(str(shared), [])))
    assert data["settings"]["retrain_permutations"] == 2
    localized = {row["method"] for row in model["localization"]}
    assert {"SeVec semantic saliency", "gAP chosen children", "Grad-CAM", "centre Gaussian"} <= localized
    assert ("AfI meta-detector" in localized) == all(
        not math.isnan(r["rank"]) for r in model["ranks"] if r["method"] == "AfI (channel importance)")
    page = (out / "index.html").read_text()
    assert "Does HINT list the planted multimodal channel as multimodal?" in page and "(multimodal)" in page
    assert "examples_bottleneck_seed3.png" in page and (out / "examples_bottleneck_seed3.png").stat().st_size > 5_000


# ---------------------------------------------------------------- issue 23: every subcommand, bad arguments
SUBCOMMANDS = {  # the least each subcommand needs to get past its parser
    "demo": [], "run": ["--data", ".", "--concepts", "animal"], "evaluate": ["--hint", "HINT"],
    "decompose": ["IMAGE"], "sevec": [], "afi": [], "ground-truth": [],
}


def _argv(argv, demo_report, image):
    return [str(demo_report / "hint") if a == "HINT" else str(image) if a == "IMAGE" else a for a in argv]


def _one_line_exit_2(argv, capsys):
    """Run the command; assert exit status 2 and a one-line error; return that line."""
    try:
        status = main(argv)
    except SystemExit as stop:
        status = stop.code
    printed = capsys.readouterr().err.replace("\r", "\n").splitlines()
    lines = [line for line in printed if line.strip() and "%|" not in line]  # progress bars aside
    assert status == 2 and len(lines) == 1 and "Traceback" not in "".join(printed), printed
    return lines[0]


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_every_subcommand_refuses_an_unusable_out_before_any_model_loads(command, demo_report, tmp_path, monkeypatch,
                                                                         capsys):
    """--out that was a file, lay under a file, or could not be made: a traceback after the work (issue 23)."""
    monkeypatch.setattr("captum_hint.datasets.models.load_model", _never_load)
    monkeypatch.setattr("captum_hint.datasets.load_model", _never_load)
    (tmp_path / "file.txt").write_text("not a folder")
    image = tmp_path / "file.txt"
    for out, message in ((tmp_path / "file.txt", "file.txt is a file; expected a folder"),
                         (tmp_path / "file.txt" / "report", "lies under the file"),
                         ("/proc/no-such/report", "argument --out: cannot make the folder /proc/no-such/report")):
        error = _one_line_exit_2(_argv([command, *SUBCOMMANDS[command], "--out", str(out)], demo_report, image), capsys)
        assert "--out" in error and message in error, error


@pytest.mark.parametrize("command, option", [("demo", "--train-scenes"), ("demo", "--test-scenes"),
                                             ("sevec", "--train-scenes"), ("sevec", "--test-scenes"),
                                             ("afi", "--scenes"), ("afi", "--probe-images"),
                                             ("ground-truth", "--train-scenes"), ("ground-truth", "--fit-scenes")])
def test_scene_counts_that_could_not_finish_are_refused(command, option, monkeypatch, capsys):
    """sevec --train-scenes 100000000 held every scene in memory and hung (issue 23)."""
    from captum_hint.app.cli import MAX_SCENES

    monkeypatch.setattr("captum_hint.datasets.load_model", _never_load)
    error = _one_line_exit_2([command, option, "100000000"], capsys)
    assert f"argument {option}: expected an integer in 1..{MAX_SCENES}, got 100000000" in error


@pytest.fixture(scope="module")
def bad_images(tmp_path_factory):
    """Files PIL cannot decode whole, by kind; and a real photo."""
    import os

    from PIL import Image

    folder = tmp_path_factory.mktemp("bad_images")
    Image.new("RGB", (40, 40), (200, 30, 30)).save(folder / "good.jpg")
    jpeg = (folder / "good.jpg").read_bytes()
    files = {"corrupt.png": os.urandom(600), "empty.png": b"", "notes.png": b"not an image at all",
             "truncated.jpg": jpeg[: len(jpeg) // 2]}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("name, reason", [("corrupt.png", "cannot identify image file"),
                                          ("empty.png", "cannot identify image file"),
                                          ("notes.png", "cannot identify image file"),
                                          ("truncated.jpg", "Truncated File Read"),
                                          ("good.jpg", "DecompressionBombError")])
def test_decompose_names_an_unreadable_image(name, reason, bad_images, tmp_path, monkeypatch, capsys):
    """Corrupt, truncated, empty, non-image files and decompression bombs gave PIL's traceback (issue 23)."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40 // 3)  # the 40 x 40 photo is a bomb here
    error = _one_line_exit_2(["decompose", str(bad_images / name), "--out", str(tmp_path)], capsys)
    assert f"images: cannot read {bad_images / name} as an image" in error and reason in error


def test_run_names_an_unreadable_image_in_the_folder(bad_images, tmp_path, capsys):
    (tmp_path / "data" / "n02123045").mkdir(parents=True)
    (tmp_path / "data" / "n02123045" / "cat.png").write_bytes((bad_images / "truncated.jpg").read_bytes())
    error = _one_line_exit_2(["run", "--data", str(tmp_path / "data"), "--concepts", "animal", "--saliency",
                              "gradient", "--out", str(tmp_path / "out")], capsys)
    assert "cat.png as an image (OSError: Truncated File Read)" in error


@pytest.mark.parametrize("command", ["run", "evaluate", "decompose", "sevec", "afi"])
def test_weights_that_are_not_a_file_are_refused(command, demo_report, bad_images, tmp_path, capsys):
    """--weights /nonexistent.pth was ignored: the pretrained weights ran and the command exited 0 (issue 23)."""
    argv = _argv([command, *SUBCOMMANDS[command], "--weights", str(tmp_path / "nonexistent.pth"), "--out",
                  str(tmp_path / "out")], demo_report, bad_images / "good.jpg")
    error = _one_line_exit_2(argv, capsys)
    assert f"weights: {tmp_path / 'nonexistent.pth'} is not a file" in error


def test_weights_from_a_state_dict_file_load_and_a_foreign_one_is_refused(tmp_path):
    import torch

    from captum_hint.datasets import load_model

    random = load_model("efficientnet-lite0", None)
    torch.save(random.model.state_dict(), tmp_path / "mine.pth")
    mine = load_model("efficientnet-lite0", str(tmp_path / "mine.pth"))
    assert all(torch.equal(a, b) for a, b in zip(mine.model.state_dict().values(), random.model.state_dict().values()))
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "foreign.pth")
    with pytest.raises(ValueError, match="foreign.pth does not fit efficientnet-lite0"):
        load_model("efficientnet-lite0", str(tmp_path / "foreign.pth"))
    (tmp_path / "code.pth").write_bytes(b"\x80\x04K\x01.")  # a pickle, not a torch archive
    with pytest.raises(ValueError, match="code.pth is not a state dict"):
        load_model("efficientnet-lite0", str(tmp_path / "code.pth"))
    with pytest.raises(ValueError, match="weights: expected 'DEFAULT', None or a state-dict file"):
        load_model("efficientnet-lite0", "IMAGENET1K_V1")


def test_decompose_refuses_negative_and_too_large_targets_and_flat_layers(bad_images, tmp_path, capsys):
    """--target -1 decomposed class 999; --layers ... _fc raised an IndexError (issue 23)."""
    image = str(bad_images / "good.jpg")
    error = _one_line_exit_2(["decompose", image, "--target", "-1"], capsys)
    assert "argument --target: expected 'predicted', a class index >= 0 or a concept, got -1" in error
    error = _one_line_exit_2(["decompose", image, "--target", "1000", "--out", str(tmp_path)], capsys)
    assert "--target: class index 1000 is out of range" in error
    error = _one_line_exit_2(["decompose", image, "--layers", "_blocks.10", "_fc", "--out", str(tmp_path)], capsys)
    assert "layers: '_fc' gives outputs shaped (1, 1000); expected spatial layers" in error


def test_evaluate_on_an_empty_data_folder_is_refused(demo_report, tmp_path, capsys):
    """evaluate --data voc on an empty folder exited 0 with empty metrics (issue 23)."""
    error = _one_line_exit_2(["evaluate", "--hint", str(demo_report / "hint"), "--data", "voc", "--root",
                              str(tmp_path), "--out", str(tmp_path / "out")], capsys)
    assert f"root: no images in {tmp_path}" in error


def test_a_model_package_that_does_not_import_is_one_line(tmp_path, monkeypatch, capsys):
    """--model vgg16 with a broken torchvision raised an ImportError traceback (issue 23)."""
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision now fails
    error = _one_line_exit_2(["decompose", str(Path(__file__)), "--model", "vgg16", "--out", str(tmp_path)], capsys)
    assert "vgg16 needs torchvision" in error
