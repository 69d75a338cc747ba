"""The Python examples of docs/querying.md and docs/lineage.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", ["querying.md", "lineage.md"])
def test_python_examples_run(page: str, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = _BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))
    assert len(blocks) >= 4, f"{page} lost its examples"
    namespace: dict[str, object] = {"__name__": f"docs_{page.removesuffix('.md')}"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{page} (python block {number})", "exec")
        exec(code, namespace)
    assert capsys.readouterr().out  # the examples print what they show
