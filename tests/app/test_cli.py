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
    assert main(["demo", "--out", str(out), "--train-scenes", "24", "--test-scenes", "8"]) == 0
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


# ---------------------------------------------------------------- review defect 7
def _never_load(*args, **kwargs):
    raise AssertionError("the model was loaded before the arguments were checked")


@pytest.mark.parametrize("argv, message", [
    (["run", "--data", ".", "--concepts", "animal", "--threshold", "1.5"],
     r"argument --threshold: expected a value in \(0.0, 1.0\), got 1.5"),
    (["evaluate", "--hint", "no-such-folder"], "argument --hint: no-such-folder holds no saved HINT"),
    (["evaluate"], "the following arguments are required: --hint"),
    (["demo", "--train-scenes", "0"], "argument --train-scenes: expected an integer >= 1, got 0"),
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


def test_ground_truth_writes_its_json_and_page(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTUM_HINT_CACHE", str(tmp_path / "cache"))
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
