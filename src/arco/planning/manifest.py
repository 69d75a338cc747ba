"""The manifest of a code location: every asset spec, and a fingerprint of them all.

A manifest is what deploying a code location writes to the catalog, so that runs can be planned from the
catalog alone. It is a plain JSON document (a frozen pydantic model with camelCase aliases)::

    {"formatVersion": 1, "codeLocation": "shop", "assets": [...AssetSpec...], "fingerprint": "sha256:..."}

``fingerprint`` is ``sha256:`` + the SHA-256 of ``arco-manifest:v1:`` + the canonical JSON of
``{"codeLocation": ..., "assets": [...]}`` (assets sorted by key), so the same code gives the same fingerprint
in every process and on every machine, and any change to an asset changes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

from pydantic import PrivateAttr, ValidationError, field_validator

from arco.core.canonical_json import JsonValue, canonical_dumps
from arco.core.errors import DefinitionError
from arco.core.model import ArcoModel
from arco.planning._gc import gc_paused
from arco.planning.graph import AssetGraph
from arco.sdk.asset import AssetSpec

__all__ = ["MANIFEST_FORMAT_VERSION", "CodeLocationManifest", "manifest_fingerprint"]

MANIFEST_FORMAT_VERSION: Literal[1] = 1
_FINGERPRINT_PREFIX = "arco-manifest:v1:"


def manifest_fingerprint(code_location: str, assets: Iterable[AssetSpec]) -> str:
    """The fingerprint of a code location's assets: ``sha256:`` + 64 hex digits."""
    document: dict[str, JsonValue] = {
        "codeLocation": code_location,
        "assets": [spec.model_dump(mode="json", by_alias=True) for spec in sorted(assets, key=_key)],
    }
    digest = hashlib.sha256((_FINGERPRINT_PREFIX + canonical_dumps(document)).encode("utf-8"))
    return "sha256:" + digest.hexdigest()


def _key(spec: AssetSpec) -> str:
    return spec.key


class CodeLocationManifest(ArcoModel):
    """All assets of one code location, sorted by key, with their fingerprint.

    Build one with :meth:`build`; :attr:`graph` validates it (lazily, once) as an :class:`AssetGraph`.
    """

    format_version: Literal[1] = MANIFEST_FORMAT_VERSION
    code_location: str
    assets: tuple[AssetSpec, ...]
    fingerprint: str

    _graph: AssetGraph | None = PrivateAttr(default=None)

    @field_validator("code_location")
    @classmethod
    def _name(cls, name: str) -> str:
        if not name.strip() or len(name) > 200:
            raise DefinitionError(f"code location name {name[:80]!r} must be 1-200 characters")
        return name

    @field_validator("assets")
    @classmethod
    def _sorted(cls, assets: tuple[AssetSpec, ...]) -> tuple[AssetSpec, ...]:
        return tuple(sorted(assets, key=_key))

    @classmethod
    def build(cls, code_location: str, assets: Iterable[AssetSpec]) -> CodeLocationManifest:
        """Build and validate the manifest of ``assets``, computing its fingerprint.

        Raises:
            DefinitionError: if the assets do not form a valid graph (see :class:`AssetGraph`).
        """
        with gc_paused():
            ordered = tuple(sorted(assets, key=_key))
            graph = AssetGraph(ordered)
            manifest = cls(
                code_location=code_location,
                assets=ordered,
                fingerprint=manifest_fingerprint(code_location, ordered),
            )
        manifest._graph = graph
        return manifest

    @classmethod
    def from_json(cls, data: str | bytes, *, verify: bool = True) -> CodeLocationManifest:
        """Read a manifest from its JSON document and validate its graph.

        Args:
            data: The JSON text.
            verify: Also check the fingerprint against the assets (see :meth:`verify`).

        Raises:
            DefinitionError: if the document is not a valid manifest, its fingerprint does not match, or its
                assets do not form a valid graph.
        """
        with gc_paused():
            try:
                manifest = cls.model_validate_json(data)
            except ValidationError as exc:
                raise DefinitionError(f"not a valid code location manifest: {exc}") from None
            if verify:
                manifest.verify()
            manifest._graph = AssetGraph(manifest.assets)
        return manifest

    def verify(self) -> CodeLocationManifest:
        """Check that :attr:`fingerprint` matches the assets (for a manifest read back from storage).

        Raises:
            DefinitionError: if it does not: the stored manifest was changed or corrupted.
        """
        expected = manifest_fingerprint(self.code_location, self.assets)
        if expected != self.fingerprint:
            raise DefinitionError(
                f"manifest of code location {self.code_location!r} has fingerprint {self.fingerprint} but "
                f"its assets hash to {expected}: it was modified after it was built; deploy the code "
                "location again"
            )
        return self

    @property
    def graph(self) -> AssetGraph:
        """The validated asset graph (built on first use).

        Raises:
            DefinitionError: if the assets do not form a valid graph.
        """
        if self._graph is None:
            self._graph = AssetGraph(self.assets)
        return self._graph
