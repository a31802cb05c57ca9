"""Sphinx configuration: autodoc + napoleon for the API, MyST for the Markdown pages, myst-nb for the tutorials."""

import captum_hint

project = "captum_hint"
author = "captum_hint developers"
release = version = captum_hint.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",  # Markdown (MyST) pages and the notebooks
]

# The tutorials are shown with the outputs stored in them (CI executes them separately, under pytest).
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes sections as fields: a NamedTuple's fields are documented once, by autodoc.
napoleon_use_ivar = True

exclude_patterns = ["_build", "tutorials/conftest.py", "**/.ipynb_checkpoints"]
html_theme = "furo"
html_title = "captum_hint"
