"""Arco: a file-native lakehouse catalog with execution-first orchestration on Temporal.

The public names below are imported on first use, so that importing a light module such as ``arco.core.keys``
(as Temporal workflow code does) never loads Polars or PyArrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arco.sdk.context import AssetContext

#: Public name -> the module that defines it.
_PUBLIC: dict[str, str] = {
    "AssetContext": "arco.sdk.context",
}

__all__ = ["AssetContext"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'arco' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
