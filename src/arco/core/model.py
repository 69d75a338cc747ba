"""The base of Arco's boundary models: frozen pydantic v2 models with camelCase JSON aliases.

Workflow and activity inputs/outputs, events and settings derive from :class:`ArcoModel`, so any Temporal client
(Go, the ``temporal`` CLI with ``--input '{...}'``) can send them and the Temporal UI shows readable JSON.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ArcoModel(BaseModel):
    """Frozen, camelCase-on-the-wire model; readers also accept snake_case field names."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        ser_json_timedelta="float",
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready wire form (camelCase keys, ``None`` fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
