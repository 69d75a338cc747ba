"""Conventions every ``arco`` command keeps: ``-o/--output`` is the output format, never a file."""

from __future__ import annotations

from collections.abc import Iterator

import click

from arco.cli.main import cli


def _commands(
    group: click.Group, ctx: click.Context, path: str = "arco"
) -> Iterator[tuple[str, click.Command]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, ctx, f"{path} {name}")


def test_dash_o_and_output_are_the_output_format_everywhere() -> None:
    ctx = click.Context(cli)
    seen = []
    for path, command in _commands(cli, ctx):
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            names = set(param.opts) | set(param.secondary_opts)
            if names & {"-o", "--output"}:
                seen.append(path)
                assert {"-o", "--output"} <= names, f"{path}: {sorted(names)} (give both -o and --output)"
                assert isinstance(param.type, click.Choice), f"{path}: -o/--output must choose a format"
                assert "json" in param.type.choices, f"{path}: {param.type.choices}"
    for expected in ("arco query", "arco lineage upstream", "arco run start", "arco run list", "arco doctor"):
        assert expected in seen, expected
