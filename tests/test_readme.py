"""The README's promises: its two commands, and CI running the test command verbatim."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^    (pip install .*)$", readme, flags=re.M)
    assert commands[0] == "pip install . && python -m sobolev_flow.run"
    assert "[test]" in commands[1] and "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()
