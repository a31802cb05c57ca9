"""Every tutorial notebook's code cells run, in order, in one namespace."""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "tutorials").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    namespace = {}
    for number, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{notebook.name} cell {number}", "exec"), namespace)
    plt.close("all")
    assert "hint" in namespace and namespace["hint"].scores_.shape[0] == 112


def test_readme_first_example_runs(capsys):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    first = readme.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(first, "README.md example", "exec"), {})
    plt.close("all")
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == ["torch.Size([2, 112, 14, 14])", "torch.Size([2, 1, 224, 224])"]
