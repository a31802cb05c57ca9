"""The README's first example runs; the console script points at the CLI.

(The tutorial notebooks run under nbmake, see ``tutorials/conftest.py``.)
"""

from pathlib import Path

import matplotlib.pyplot as plt


def test_readme_first_example_runs(capsys):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    first = readme.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(first, "README.md example", "exec"), {})
    plt.close("all")
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == ["torch.Size([2, 112, 14, 14])", "torch.Size([2, 1, 224, 224])"]


def test_console_script_loads_the_cli():
    """Regression: the entry point named ``captum_hint.cli``, a module that moved to ``captum_hint.app.cli``."""
    from importlib.metadata import entry_points

    from captum_hint.app.cli import main

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "captum-hint"]
    assert script.load() is main
