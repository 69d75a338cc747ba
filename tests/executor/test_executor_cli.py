"""``arco worker executor``: option handling and errors that need no server."""

from __future__ import annotations

from click.testing import CliRunner

from arco.cli.main import cli


def test_help_names_the_options() -> None:
    result = CliRunner().invoke(cli, ["worker", "executor", "--help"])
    assert result.exit_code == 0
    for option in (
        "--queue",
        "--code-location",
        "--data-root",
        "--app-dir",
        "--max-concurrent-tasks",
        "--max-task-polls",
    ):
        assert option in result.output


def test_an_unknown_code_location_fails_before_connecting() -> None:
    result = CliRunner().invoke(
        cli,
        ["worker", "executor", "--code-location", "no_such_location_module"],
        env={"ARCO_TEMPORAL_ADDRESS": "127.0.0.1:1"},
    )
    assert result.exit_code == 2
    assert "cannot import code location 'no_such_location_module'" in result.output


def test_the_scope_comes_from_the_environment_and_is_validated() -> None:
    result = CliRunner().invoke(
        cli, ["worker", "executor", "--code-location", "executor_assets"], env={"ARCO_TENANT": "Bad Tenant"}
    )
    assert result.exit_code == 2
    assert "ARCO_TENANT" in result.output


def test_task_polls_must_be_positive() -> None:
    result = CliRunner().invoke(
        cli, ["worker", "executor", "--code-location", "executor_assets", "--max-task-polls", "0"]
    )
    assert result.exit_code == 2
    assert "--max-task-polls" in result.output
