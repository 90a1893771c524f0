"""Sphinx configuration of the sobolev_flow documentation.

Build (offline; warnings are errors):

    pip install ".[docs]" && python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
# document the source tree next to this folder, whatever is installed
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import sobolev_flow

project = "sobolev_flow"
author = "the sobolev_flow developers"
copyright = "2026, the sobolev_flow developers"
version = release = sobolev_flow.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "sobolev_flow_docs",
]

# no intersphinx: the build reaches no network
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path = []
language = "en"
nitpicky = False
smartquotes = False   # quotes in docstrings and tables are code (TOML strings), not prose

# ----------------------------------------------------------------------------- autodoc
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"          # the numpydoc sections state the types

# ----------------------------------------------------------------------------- numpydoc
numpydoc_show_class_members = False   # autodoc :members: lists them once
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# ----------------------------------------------------------------------------- notebooks
# The notebooks in notebooks/ are committed without outputs and shown as they are, never run
# (they run full studies; the test suite executes their short setting).
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3  # the user guide (docs/guide.md) links to its own sections

# ----------------------------------------------------------------------------- HTML
html_theme = "alabaster"
html_title = f"sobolev_flow {release}"
html_static_path = []
html_theme_options = {"description": "Wasserstein gradient flows of kernel mean discrepancies on the torus",
                      "fixed_sidebar": True}
