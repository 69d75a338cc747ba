"""docs/assets.md's worked example runs and prints exactly the output the document shows."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "assets.md"
_BLOCK = re.compile(
    r"<!-- (example-file: (?P<file>\S+)|example-run|example-output) -->\n```\w*\n(?P<body>.*?)```", re.S
)


def _blocks() -> Iterator[tuple[str, str | None, str]]:
    for match in _BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        kind = match.group(1).split(":")[0]
        yield kind, match.group("file"), match.group("body")


def test_the_worked_example_runs_as_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = list(_blocks())
    assert [kind for kind, _, _ in blocks] == ["example-file", "example-run", "example-output"]
    (_, name, source), (_, _, script), (_, _, expected) = blocks
    assert name is not None
    (tmp_path / name).write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    module = name.removesuffix(".py")
    monkeypatch.delitem(sys.modules, module, raising=False)
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            exec(compile(script, str(DOC), "exec"), {"__name__": "assets_doc_example"})
    finally:
        sys.modules.pop(module, None)
    assert output.getvalue() == expected
