"""Access to the original Arco project's compatibility fixtures in ``../shared/arco-compat``.

Only the compatibility tests use these. On a clone without ``../shared`` they skip with a clear reason; in CI
(``ARCO_CI=1`` or ``CI=true``) the folder must be there and its absence fails the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from support.system import skip_or_fail

REPO_ROOT = Path(__file__).resolve().parents[2]
# An empty ARCO_COMPAT_DIR counts as unset (the sibling shared/ folder).
COMPAT_DIR = Path(os.environ.get("ARCO_COMPAT_DIR") or REPO_ROOT.parent / "shared" / "arco-compat")


@pytest.fixture(scope="session")
def compat_dir() -> Path:
    """The compat fixture folder; skips (or fails in CI) when it is absent."""
    if not COMPAT_DIR.is_dir():
        reason = (
            f"compatibility fixtures not found at {COMPAT_DIR}: clone next to the 'shared' folder or set "
            "ARCO_COMPAT_DIR to run the byte-compatibility tests"
        )
        skip_or_fail(reason)
    return COMPAT_DIR


def load_json(path: Path) -> Any:
    """Read a JSON fixture file."""
    return json.loads(path.read_text(encoding="utf-8"))
