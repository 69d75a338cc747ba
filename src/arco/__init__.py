"""Arco: a file-native lakehouse catalog with execution-first orchestration on Temporal.

The public names below are imported on first use, so that importing a light module such as ``arco.core.keys``
(as Temporal workflow code does) never loads Polars or PyArrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arco.planning.location import load_code_location
    from arco.sdk.asset import (
        AssetDefinition,
        RetryPolicy,
        Timeouts,
        Upstream,
        asset,
    )
    from arco.sdk.checks import (
        CustomCheck,
        FreshnessCheck,
        NotNullCheck,
        RowCountCheck,
        UniqueCheck,
    )
    from arco.sdk.context import AssetContext
    from arco.sdk.partitions import (
        AllPartitionsMapping,
        DailyPartitions,
        DimensionMapping,
        DynamicPartitions,
        HourlyPartitions,
        IdentityMapping,
        MonthlyPartitions,
        MultiPartitions,
        StaticPartitions,
        TimeWindowMapping,
        TimeWindowPartitions,
        WeeklyPartitions,
    )

#: Public name -> the module that defines it.
_PUBLIC: dict[str, str] = {
    "AssetContext": "arco.sdk.context",
    "AssetDefinition": "arco.sdk.asset",
    "RetryPolicy": "arco.sdk.asset",
    "Timeouts": "arco.sdk.asset",
    "Upstream": "arco.sdk.asset",
    "asset": "arco.sdk.asset",
    "AllPartitionsMapping": "arco.sdk.partitions",
    "DailyPartitions": "arco.sdk.partitions",
    "DimensionMapping": "arco.sdk.partitions",
    "DynamicPartitions": "arco.sdk.partitions",
    "HourlyPartitions": "arco.sdk.partitions",
    "IdentityMapping": "arco.sdk.partitions",
    "MonthlyPartitions": "arco.sdk.partitions",
    "MultiPartitions": "arco.sdk.partitions",
    "StaticPartitions": "arco.sdk.partitions",
    "TimeWindowMapping": "arco.sdk.partitions",
    "TimeWindowPartitions": "arco.sdk.partitions",
    "WeeklyPartitions": "arco.sdk.partitions",
    "CustomCheck": "arco.sdk.checks",
    "FreshnessCheck": "arco.sdk.checks",
    "NotNullCheck": "arco.sdk.checks",
    "RowCountCheck": "arco.sdk.checks",
    "UniqueCheck": "arco.sdk.checks",
    "load_code_location": "arco.planning.location",
}

__all__ = [
    "AllPartitionsMapping",
    "AssetContext",
    "AssetDefinition",
    "CustomCheck",
    "DailyPartitions",
    "DimensionMapping",
    "DynamicPartitions",
    "FreshnessCheck",
    "HourlyPartitions",
    "IdentityMapping",
    "MonthlyPartitions",
    "MultiPartitions",
    "NotNullCheck",
    "RetryPolicy",
    "RowCountCheck",
    "StaticPartitions",
    "TimeWindowMapping",
    "TimeWindowPartitions",
    "Timeouts",
    "UniqueCheck",
    "Upstream",
    "WeeklyPartitions",
    "asset",
    "load_code_location",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'arco' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
