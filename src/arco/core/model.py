"""The base of Arco's boundary models: frozen pydantic v2 models with camelCase JSON aliases.

Workflow and activity inputs/outputs, events and settings derive from :class:`ArcoModel`, so any Temporal client
(Go, the ``temporal`` CLI with ``--input '{...}'``) can send them and the Temporal UI shows readable JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic_core import core_schema


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


def string_value_schema(cls: type, parse: Callable[[str], Any]) -> core_schema.CoreSchema:
    """The pydantic schema of a value type that travels as a string: ``parse`` reads it, ``str`` writes it,
    and an instance of ``cls`` is accepted as it is (for ``__get_pydantic_core_schema__``)."""
    from_str = core_schema.no_info_after_validator_function(parse, core_schema.str_schema())
    return core_schema.json_or_python_schema(
        json_schema=from_str,
        python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_str]),
        serialization=core_schema.to_string_ser_schema(),
    )
