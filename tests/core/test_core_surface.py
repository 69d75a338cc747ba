"""The public surface of ``arco.core``: every advertised name exists, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import arco.core


def test_every_exported_name_resolves() -> None:
    missing = [name for name in arco.core.__all__ if not hasattr(arco.core, name)]
    assert missing == []
    assert len(set(arco.core.__all__)) == len(arco.core.__all__)


def test_import_pulls_in_no_heavy_or_temporal_modules() -> None:
    # Workflow modules import arco.core inside the Temporal sandbox: no I/O or dataframe libraries may follow.
    code = (
        "import sys, arco.core; "
        "print(','.join(m for m in ('pyarrow', 'polars', 'fsspec', 'gcsfs', 'networkx', 'temporalio') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
