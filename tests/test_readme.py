"""The README starts with the two set-up commands, and CI runs the README's test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_opens_with_install_and_test_commands():
    install, test = _commands()[:2]
    assert "pip install" in install and "nstjax stylize" in install
    assert "pytest" in test


def test_ci_runs_the_readme_test_command():
    test = _commands()[1]
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_cli_flags_in_readme_exist():
    """Every `--flag` the README's stylize table lists is accepted by the parser."""
    from nstjax.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    table = readme.split("### `nstjax stylize`")[1].split("###")[0]
    flags = set(re.findall(r"^\| `(--[a-z-]+)", table, re.M))
    parser = build_parser()
    stylize = parser._subparsers._group_actions[0].choices["stylize"]
    known = {s for action in stylize._actions for s in action.option_strings}
    assert flags and flags <= known, flags - known
