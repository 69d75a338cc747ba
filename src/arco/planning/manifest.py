"""The manifest of a code location: every asset spec, and fingerprints of each and of them all.

A manifest is what deploying a code location writes to the catalog, so that runs can be planned from the
catalog alone. It is a plain JSON document (a frozen pydantic model with camelCase aliases)::

    {"formatVersion": 1, "codeLocation": "shop", "assets": [...AssetSpec...],
     "assetFingerprints": {"shop.orders": "sha256:...", ...}, "fingerprint": "sha256:..."}

An asset's fingerprint is ``sha256:`` + the SHA-256 of ``arco-asset:v1:`` + the canonical JSON of its spec; the
manifest's is ``sha256:`` + the SHA-256 of ``arco-manifest:v1:`` + the canonical JSON of
``{"codeLocation": ..., "assets": {key: asset fingerprint, ...}}``. So the same code gives the same
fingerprints in every process and on every machine, any change to an asset changes both, and a manifest
reassembled from per-asset catalog entries gets its fingerprint without hashing every spec again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import PrivateAttr, StringConstraints, ValidationError, field_validator, model_validator

from arco.core.canonical_json import canonical_dumps
from arco.core.errors import DefinitionError
from arco.core.model import ArcoModel
from arco.planning._gc import gc_paused
from arco.planning.graph import AssetGraph
from arco.sdk.asset import AssetSpec

__all__ = [
    "MANIFEST_FORMAT_VERSION",
    "CodeLocationManifest",
    "Fingerprint",
    "asset_fingerprint",
    "manifest_fingerprint",
    "validate_code_location_name",
]

MANIFEST_FORMAT_VERSION: Literal[1] = 1

#: A fingerprint field: ``sha256:`` + 64 lowercase hex digits.
Fingerprint = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,199}")
_encode = json.encoder.encode_basestring  # the string writer of canonical JSON


def _digest(prefix: str, text: str) -> str:
    return "sha256:" + hashlib.sha256((prefix + text).encode("utf-8")).hexdigest()


def asset_fingerprint(spec: AssetSpec) -> str:
    """The fingerprint of one asset spec: ``sha256:`` + 64 hex digits."""
    return _digest("arco-asset:v1:", canonical_dumps(spec))


def manifest_fingerprint(code_location: str, asset_fingerprints: Mapping[str, str]) -> str:
    """The fingerprint of a code location from its assets' fingerprints: ``sha256:`` + 64 hex digits."""
    # The canonical JSON of {"assets": {key: fingerprint, ...}, "codeLocation": name}, written directly: keys
    # sorted by code point, strings escaped by the writer canonical_dumps uses (the tests compare the two).
    entries = ",".join(
        f"{_encode(key)}:{_encode(value)}" for key, value in sorted(asset_fingerprints.items())
    )
    text = f'{{"assets":{{{entries}}},"codeLocation":{_encode(code_location)}}}'
    return _digest("arco-manifest:v1:", text)


def validate_code_location_name(name: str) -> str:
    """Return ``name`` if it is a valid code location name (a module-like name such as ``shop.assets``).

    Raises:
        DefinitionError: otherwise.
    """
    if _NAME.fullmatch(name) is None:
        raise DefinitionError(
            f"code location name {name[:80]!r} is invalid: expected 1-200 letters, digits, '_', '.' or '-', "
            "starting with a letter or '_', for example 'shop.assets'"
        )
    return name


def _key(spec: AssetSpec) -> str:
    return spec.key


class CodeLocationManifest(ArcoModel):
    """All assets of one code location, sorted by key, with their fingerprint.

    Build one with :meth:`build`; :attr:`graph` validates it (lazily, once) as an :class:`AssetGraph`.
    """

    format_version: Literal[1] = MANIFEST_FORMAT_VERSION
    code_location: str
    assets: tuple[AssetSpec, ...]
    asset_fingerprints: dict[str, Fingerprint]
    fingerprint: Fingerprint

    _graph: AssetGraph | None = PrivateAttr(default=None)

    @field_validator("code_location")
    @classmethod
    def _name(cls, name: str) -> str:
        return validate_code_location_name(name)

    @field_validator("assets")
    @classmethod
    def _sorted(cls, assets: tuple[AssetSpec, ...]) -> tuple[AssetSpec, ...]:
        return tuple(sorted(assets, key=_key))

    @model_validator(mode="after")
    def _complete(self) -> CodeLocationManifest:
        keys = [spec.key for spec in self.assets]
        if sorted(self.asset_fingerprints) != keys:
            raise DefinitionError(
                f"manifest of code location {self.code_location!r}: assetFingerprints must name exactly its "
                "assets; rebuild the manifest with CodeLocationManifest.build"
            )
        return self

    @classmethod
    def build(cls, code_location: str, assets: Iterable[AssetSpec]) -> CodeLocationManifest:
        """Build and validate the manifest of ``assets``, computing its fingerprints.

        Raises:
            DefinitionError: if the assets do not form a valid graph (see :class:`AssetGraph`).
        """
        with gc_paused():
            ordered = tuple(sorted(assets, key=_key))
            graph = AssetGraph(ordered)
            fingerprints = {spec.key: asset_fingerprint(spec) for spec in ordered}
            manifest = cls(
                code_location=code_location,
                assets=ordered,
                asset_fingerprints=fingerprints,
                fingerprint=manifest_fingerprint(code_location, fingerprints),
            )
        manifest._graph = graph
        return manifest

    @classmethod
    def assemble(
        cls, code_location: str, assets: Iterable[tuple[AssetSpec, str]], *, verify: bool = False
    ) -> CodeLocationManifest:
        """Reassemble a manifest from specs and their stored fingerprints (as deployed in the catalog).

        Args:
            code_location: The code location's name.
            assets: Each asset's spec and stored fingerprint.
            verify: Also recompute every asset's fingerprint (see :meth:`verify`).

        Raises:
            DefinitionError: if the assets do not form a valid graph, or (``verify``) a fingerprint does not
                match its spec.
        """
        validate_code_location_name(code_location)
        with gc_paused():
            pairs = sorted(assets, key=lambda pair: pair[0].key)
            fingerprints = {spec.key: fingerprint for spec, fingerprint in pairs}
            manifest = cls.model_construct(
                code_location=code_location,
                assets=tuple(spec for spec, _ in pairs),
                asset_fingerprints=fingerprints,
                fingerprint=manifest_fingerprint(code_location, fingerprints),
            )
            if len(fingerprints) != len(pairs):
                raise DefinitionError(f"code location {code_location!r} lists an asset twice")
            if verify:
                manifest.verify()
            manifest._graph = AssetGraph(manifest.assets)
        return manifest

    @classmethod
    def from_json(cls, data: str | bytes, *, verify: bool = True) -> CodeLocationManifest:
        """Read a manifest from its JSON document and validate its graph.

        Args:
            data: The JSON text.
            verify: Also check the fingerprints against the assets (see :meth:`verify`).

        Raises:
            DefinitionError: if the document is not a valid manifest, a fingerprint does not match, or its
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
        """Check every fingerprint against the specs (for a manifest read back from storage).

        Raises:
            DefinitionError: naming the assets whose spec no longer matches its fingerprint.
        """
        changed = [
            spec.key for spec in self.assets if asset_fingerprint(spec) != self.asset_fingerprints[spec.key]
        ]
        expected = manifest_fingerprint(self.code_location, self.asset_fingerprints)
        if changed or expected != self.fingerprint:
            what = (
                f"assets {changed[:5]} do not match their fingerprints"
                if changed
                else (f"fingerprint {self.fingerprint} does not match its assets' ({expected})")
            )
            raise DefinitionError(
                f"manifest of code location {self.code_location!r}: {what}; it was modified after it was "
                "built: deploy the code location again"
            )
        return self

    def __eq__(self, other: object) -> bool:
        # Equal manifests have equal fields; the cached graph is not part of the value.
        if not isinstance(other, CodeLocationManifest):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # unhashable, like every model with dict fields

    @property
    def graph(self) -> AssetGraph:
        """The validated asset graph (built on first use).

        Raises:
            DefinitionError: if the assets do not form a valid graph.
        """
        if self._graph is None:
            self._graph = AssetGraph(self.assets)
        return self._graph
