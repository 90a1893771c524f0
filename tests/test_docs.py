"""Project metadata and the documentation's generated parts (the Sphinx build itself runs in CI).

``python -m sobolev_flow --version``; the configuration reference generated from the schema names
every key; CITATION.cff parses and cites the paper; the docstring preprocessing of the docs
extension leaves reST nothing to misread.
"""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

import sobolev_flow
from sobolev_flow import config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _docs_extension():
    """docs/_ext/sobolev_flow_docs.py, imported by path (it needs neither Sphinx nor docutils)."""
    path = ROOT / "docs" / "_ext" / "sobolev_flow_docs.py"
    spec = importlib.util.spec_from_file_location("sobolev_flow_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _python_m(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False,
                          timeout=120)


def test_version_command_prints_the_package_version():
    result = _python_m("sobolev_flow", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sobolev_flow {sobolev_flow.__version__}"


def test_bare_command_points_to_the_commands():
    result = _python_m("sobolev_flow")
    assert result.returncode == 0, result.stderr
    for command in ("sobolev_flow.run", "sobolev_flow.rates", "sobolev_flow.plot", "sobolev_flow.validation"):
        assert f"python -m {command}" in result.stdout


def test_unknown_arguments_exit_2():
    result = _python_m("sobolev_flow", "--no-such-option")
    assert result.returncode == 2
    assert "--no-such-option" in result.stderr


def test_configuration_reference_has_every_section_key_and_default():
    docs = _docs_extension()
    text = docs.render_config_reference(config.SCHEMA)
    for section, keys in config.SCHEMA.items():
        assert f"``[{section}]``" in text
        for name, key in keys.items():
            row = text.split(f"   * - ``{section}.{name}``\n", 1)
            assert len(row) == 2, f"{section}.{name} missing from the configuration reference"
            default_cell, description_cell = row[1].splitlines()[:2]
            if key.default is None:
                assert default_cell == "     - (unset)"
            else:
                assert default_cell == f"     - ``{docs.format_default(key.default)}``"
            assert description_cell.startswith("     - ")
    # the default schema is the package's
    assert docs.render_config_reference() == text


def test_configuration_defaults_render_as_toml_values_that_resolve_to_the_defaults():
    tomllib = pytest.importorskip("tomllib")
    docs = _docs_extension()
    for section, keys in config.SCHEMA.items():
        for name, key in keys.items():
            if key.default is None:
                continue
            value = tomllib.loads(f"v = {docs.format_default(key.default)}")["v"]
            assert value == key.default, f"{section}.{name}"


def test_choices_are_listed():
    docs = _docs_extension()
    text = docs.render_config_reference(config.SCHEMA)
    assert docs.choices_of(config.SCHEMA["grid"]["dealias"].convert) == ("3/2", "2/3")
    assert docs.choices_of(config.SCHEMA["grid"]["n"].convert) is None
    lines = text.splitlines()
    line = lines[lines.index("   * - ``fft.effort``") + 2]  # the row's description cell
    for option in ("estimate", "measure", "patient", "exhaustive"):
        assert f'``"{option}"``' in line


def test_docstring_math_is_escaped_for_rest_outside_literals():
    docs = _docs_extension()
    lines = ["Energy ½ Σ |k|^{-2s} |ρ_k|², max|∇ψ|, shape (n, *grid.shape), f(**kw).",
             "Kept: ``a|b``, :math:`|x|`, *emphasis* and **strong**.",
             "",
             "Schema::",
             "",
             "    /snapshots/mu   (n_snap, *shape)   |k|",
             "",
             ">>> abs(-1) | 0",
             "1"]
    out = docs.escape_plain_math(lines)
    assert out[0] == r"Energy ½ Σ \|k\|^{-2s} \|ρ_k\|², max\|∇ψ\|, shape (n, \*grid.shape), f(\*\*kw)."
    assert out[1] == lines[1]
    assert out[3:] == lines[3:]


def test_module_headings_become_rubrics():
    docs = _docs_extension()
    lines = ["Summary.", "", "Conventions", "-----------", "Text.", "", "Indented", "    -----"]
    assert docs.rubricate_headings(lines) == ["Summary.", "", ".. rubric:: Conventions", "", "Text.", "",
                                              "Indented", "    -----"]


def test_citation_cff_parses_and_cites_the_paper():
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert data["cff-version"] == "1.2.0"
    for field in ("message", "title", "authors"):
        assert data[field]
    assert str(data["version"]) == sobolev_flow.__version__
    references = data["references"]
    assert any("2603.01977" in str(reference) for reference in references)
    for reference in references:
        assert reference["type"] and reference["title"] and reference["authors"]


def test_license_and_changelog():
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the sobolev_flow developers" in license_text
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(sobolev_flow.__version__)}\]", changelog, flags=re.MULTILINE)


def test_ci_builds_the_documentation_as_the_readme_says():
    command = "pip install \".[docs]\" && python -m sphinx -W --keep-going -b html docs docs/_build/html"
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()
    assert f"    {command}" in (ROOT / "README.md").read_text().splitlines()
