"""The ``origine`` console script is pipelines.cli.main: the run-starting commands live
beside the run starters, every other command is origine.cli's (issue 19: origine/cli.py
imported pipelines.runs, the one Dagster import under origine/)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

from origine import cli as domain_cli
from pipelines import cli as console

ROOT = Path(__file__).resolve().parents[1]
RUN_COMMANDS = {"ingest", "demo", "suppress", "audit", "ui"}


def test_the_console_script_is_pipelines_cli() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"origine": "pipelines.cli:main"}


def test_the_console_script_has_every_command_once() -> None:
    assert set(console.main.commands) == set(domain_cli.main.commands) | RUN_COMMANDS
    assert not RUN_COMMANDS & set(domain_cli.main.commands)
    # The same command objects: an origine.cli command behaves alike from either group.
    for name, command in domain_cli.main.commands.items():
        assert console.main.commands[name] is command


def test_domain_commands_run_through_the_console_script(tmp_path: Path) -> None:
    result = CliRunner().invoke(console.main, ["ledger", "head", "--home", str(tmp_path / "none"), "--json"])
    direct = CliRunner().invoke(domain_cli.main, ["ledger", "head", "--home", str(tmp_path / "none"), "--json"])
    assert (result.exit_code, result.output) == (direct.exit_code, direct.output)


def test_the_domain_cli_loads_no_dagster_and_the_console_script_defers_it() -> None:
    """``origine --help`` and the domain commands start without Dagster (seconds of import);
    only a run-starting command loads it."""
    for module in ("origine.cli", "pipelines.cli"):
        code = (f"import sys, {module}; print(sorted(m for m in sys.modules "
                "if m.split('.')[0] in ('dagster', 'assets', 'great_expectations')))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
        assert out.stdout.strip() == "[]", (module, out.stdout[:300])


def test_python_m_pipelines_cli_lists_all_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(console.main.commands)
