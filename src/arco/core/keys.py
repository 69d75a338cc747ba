"""Asset keys: the validated ``namespace.name`` pair that names every asset.

The display and wire form is ``namespace.name``; ``namespace/name`` (the form used in storage paths) is
accepted on parse too. Each segment is ``[a-z][a-z0-9_]*`` and the whole key (``namespace.name``) is at most
128 characters, so a key is always safe as a path segment, a Parquet value and a Temporal id fragment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, GetCoreSchemaHandler
from pydantic_core import core_schema

from arco.core.errors import InvalidAssetKeyError
from arco.core.model import string_value_schema

#: Maximum length of the display form ``namespace.name``.
MAX_ASSET_KEY_LENGTH = 128

_SEGMENT = re.compile(r"[a-z][a-z0-9_]*")
_EXPECTED = (
    "expected 'namespace.name' (or 'namespace/name') where each part starts with a lowercase letter "
    f"followed by lowercase letters, digits or '_', at most {MAX_ASSET_KEY_LENGTH} characters in all; "
    "for example 'analytics.daily_sales'"
)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _check_segment(kind: str, segment: object, key_text: str) -> None:
    if not isinstance(segment, str):
        raise InvalidAssetKeyError(
            f"asset key {kind} must be a string, got {type(segment).__name__}; {_EXPECTED}"
        )
    if _SEGMENT.fullmatch(segment) is None:
        hint = ""
        lowered = segment.lower().replace("-", "_")
        if lowered != segment and _SEGMENT.fullmatch(lowered) is not None:
            hint = f" (did you mean {lowered!r}?)"
        raise InvalidAssetKeyError(
            f"asset key {_shown(key_text)} has an invalid {kind} {_shown(segment)}{hint}: {_EXPECTED}"
        )


@dataclass(frozen=True, slots=True, order=True)
class AssetKey:
    """A validated asset key ``namespace.name``.

    Ordering is by namespace, then name. ``str(key)`` is the display form ``namespace.name``.

    Raises:
        InvalidAssetKeyError: on construction from invalid segments.
    """

    namespace: str
    name: str

    def __post_init__(self) -> None:
        key_text = f"{self.namespace}.{self.name}"
        _check_segment("namespace", self.namespace, key_text)
        _check_segment("name", self.name, key_text)
        if len(key_text) > MAX_ASSET_KEY_LENGTH:
            raise InvalidAssetKeyError(
                f"asset key {_shown(key_text)} is {len(key_text)} characters long: {_EXPECTED}"
            )

    @classmethod
    def parse(cls, text: str) -> AssetKey:
        """Parse ``namespace.name`` or ``namespace/name``.

        Args:
            text: The key text.

        Returns:
            The validated key.

        Raises:
            InvalidAssetKeyError: if the text is not exactly two valid segments joined by one ``.`` or ``/``.
        """
        if not isinstance(text, str):
            raise InvalidAssetKeyError(f"asset key must be a string, got {type(text).__name__}; {_EXPECTED}")
        if len(text) > MAX_ASSET_KEY_LENGTH:
            raise InvalidAssetKeyError(
                f"asset key {_shown(text)} is {len(text)} characters long: {_EXPECTED}"
            )
        dots, slashes = text.count("."), text.count("/")
        if (dots, slashes) not in {(1, 0), (0, 1)}:
            raise InvalidAssetKeyError(
                f"asset key {_shown(text)} must have exactly one separator ('.' or '/'), found "
                f"{dots} '.' and {slashes} '/': {_EXPECTED}"
            )
        namespace, _, name = text.partition("." if dots else "/")
        return cls(namespace, name)

    @property
    def path(self) -> str:
        """The key as two path segments, ``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # As a pydantic field an AssetKey is its display string on the wire, never a nested object.
        return string_value_schema(cls, cls.parse)


def validate_asset_key(text: str) -> str:
    """Return the display form ``namespace.name`` of a valid asset key text.

    Raises:
        InvalidAssetKeyError: if ``text`` is not a valid asset key.
    """
    return str(AssetKey.parse(text))


#: An asset key as a plain string field, validated and normalised to ``namespace.name``.
AssetKeyStr = Annotated[str, AfterValidator(validate_asset_key)]
