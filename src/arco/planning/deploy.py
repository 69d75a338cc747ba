"""Deploying a code location to the Tier-1 catalog, and loading its manifest back for planning.

Deployment writes one Tier-1 asset entity per asset, all in one catalog commit, so runs can be planned from
the catalog alone (the control plane never imports user code). Each entity's ``definition`` is the canonical
JSON document (spec fields at their default values left out)::

    {"codeLocation": "shop", "fingerprint": "sha256:...", "spec": {...AssetSpec...}}

and its ``partitioning``, ``code_version``, ``description``, ``tags`` and ``owners`` columns repeat the spec's,
for people and engines querying the catalog. Assets the code location no longer defines are dropped in the
same commit; an asset owned by another code location is never taken over (the deployment is refused).
Re-deploying unchanged code writes nothing.

Loading reads the ``assets`` dataset of one catalog snapshot, keeps the entities of the code location (their
canonical ``definition`` text starts with ``{"codeLocation":"<name>",``), validates them in one pass and
reassembles the :class:`~arco.planning.manifest.CodeLocationManifest` with its validated graph.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.entities import AssetSpec as CatalogAssetSpec
from arco.catalog.tier1.operations import DropAsset, Operation, RegisterAsset
from arco.catalog.tier1.snapshot import CatalogSnapshot
from arco.core.canonical_json import JsonValue
from arco.core.errors import DefinitionError, NotFoundError
from arco.core.model import ArcoModel
from arco.planning._gc import gc_paused
from arco.planning.location import CodeLocation
from arco.planning.manifest import CodeLocationManifest, Fingerprint
from arco.sdk.asset import AssetSpec

__all__ = [
    "DeployResult",
    "DeployedAsset",
    "code_locations",
    "deploy",
    "load_manifest",
]

_OWNER_PREFIX = '{"codeLocation":'
_decoder = json.JSONDecoder()


class DeployedAsset(ArcoModel):
    """The ``definition`` of a deployed asset entity."""

    code_location: str
    fingerprint: Fingerprint
    format_version: Literal[1] = 1
    spec: AssetSpec


_DEPLOYED = TypeAdapter(list[DeployedAsset])


@dataclass(frozen=True, slots=True)
class DeployResult:
    """What a deployment changed in the catalog."""

    code_location: str
    fingerprint: str
    created: int
    updated: int
    unchanged: int
    dropped: int
    commit_id: str | None


def _owner(definition: str | None) -> str | None:
    """The code location named by a deployed definition's text (``None`` if not deployed by one)."""
    if definition is None or not definition.startswith(_OWNER_PREFIX):
        return None
    value, _ = _decoder.raw_decode(definition, len(_OWNER_PREFIX))
    return value if isinstance(value, str) else None


def _owners(snapshot: CatalogSnapshot) -> dict[str, str | None]:
    table = snapshot.scan("assets")
    keys = [str(key) for key in table.column("asset_key").to_pylist()]
    definitions: list[str | None] = table.column("definition").to_pylist()
    return {key: _owner(text) for key, text in zip(keys, definitions, strict=True)}


def _defaulted(spec: AssetSpec) -> set[str]:
    """The spec's top-level fields that hold their default value."""
    found = set()
    for name, field in AssetSpec.model_fields.items():
        if field.is_required():
            continue
        default = field.get_default(call_default_factory=True)
        if getattr(spec, name) == default:
            found.add(name)
    return found


def _entity(manifest: CodeLocationManifest, spec: AssetSpec) -> CatalogAssetSpec:
    # Top-level spec fields at their defaults are left out: the document stays small and reads back about
    # twice as fast. (Nested models are written in full: their "kind" tags are defaults too.)
    definition: JsonValue = {
        "codeLocation": manifest.code_location,
        "fingerprint": manifest.asset_fingerprints[spec.key],
        "spec": spec.model_dump(mode="json", by_alias=True, exclude=_defaulted(spec)),
    }
    partitioning: JsonValue = (
        None if spec.partitions is None else spec.partitions.model_dump(mode="json", by_alias=True)
    )
    return CatalogAssetSpec(
        key=spec.key,
        partitioning=partitioning,
        code_version=spec.code_version,
        description=spec.description or "",
        tags=spec.tags,
        owners=spec.owners,
        definition=definition,
    )


def deploy(catalog: Catalog, location: CodeLocation | CodeLocationManifest) -> DeployResult:
    """Write a code location's assets to the catalog in one commit (and drop the ones it no longer has).

    Args:
        catalog: The Tier-1 catalog of the scope to deploy to.
        location: A loaded code location or its manifest.

    Returns:
        Counts of created, updated, unchanged and dropped assets, and the commit.

    Raises:
        DefinitionError: if an asset key is owned by another code location.
        CommitConflictError: if concurrent commits kept winning (nothing was written).
        InvalidInputError: if the catalog refuses a field (for example an over-long description).
    """
    manifest = location.manifest if isinstance(location, CodeLocation) else location
    with gc_paused():
        return _deploy(catalog, manifest)


def _deploy(catalog: Catalog, manifest: CodeLocationManifest) -> DeployResult:
    name = manifest.code_location
    owners = _owners(catalog.snapshot())
    taken = sorted(
        f"{spec.key} (deployed by {owners[spec.key]!r})"
        for spec in manifest.assets
        if owners.get(spec.key) not in (None, name)
    )
    if taken:
        raise DefinitionError(
            f"cannot deploy code location {name!r}: asset key(s) {', '.join(taken)} belong to another code "
            "location; rename the assets or remove them from the other code location and deploy it first"
        )
    current = {spec.key for spec in manifest.assets}
    stale = sorted(key for key, owner in owners.items() if owner == name and key not in current)
    operations: list[Operation] = [RegisterAsset(_entity(manifest, spec)) for spec in manifest.assets]
    operations.extend(DropAsset(key, if_exists=True) for key in stale)
    result = catalog.apply(operations, operation="deploy_code_location")
    counts = result.assets
    return DeployResult(
        code_location=name,
        fingerprint=manifest.fingerprint,
        created=counts.get("created", 0),
        updated=counts.get("updated", 0),
        unchanged=counts.get("unchanged", 0),
        dropped=len(stale),
        commit_id=result.snapshot.commit_id,
    )


def code_locations(catalog: Catalog | CatalogSnapshot) -> list[str]:
    """The names of the code locations deployed in the catalog, sorted."""
    snapshot = catalog.snapshot() if isinstance(catalog, Catalog) else catalog
    return sorted({owner for owner in _owners(snapshot).values() if owner is not None})


def load_manifest(
    catalog: Catalog | CatalogSnapshot, code_location: str, *, verify: bool = False
) -> CodeLocationManifest:
    """Load a deployed code location's manifest from the catalog and validate its graph.

    Args:
        catalog: The catalog (its latest snapshot is read) or one snapshot.
        code_location: The code location's name.
        verify: Also recompute every asset's fingerprint from its spec (slower; the catalog already
            checksums its files).

    Returns:
        The manifest, with its graph validated.

    Raises:
        NotFoundError: if the code location is not deployed in this catalog.
        DefinitionError: if the deployed assets are malformed or do not form a valid graph.
    """
    with gc_paused():
        return _load(catalog, code_location, verify)


def _load(catalog: Catalog | CatalogSnapshot, code_location: str, verify: bool) -> CodeLocationManifest:
    snapshot = catalog.snapshot() if isinstance(catalog, Catalog) else catalog
    definitions = snapshot.scan("assets").column("definition").to_pylist()
    prefix = _OWNER_PREFIX + json.dumps(code_location, ensure_ascii=False) + ","
    chosen = [text for text in definitions if text is not None and text.startswith(prefix)]
    if not chosen:
        deployed = code_locations(snapshot)
        raise NotFoundError(
            f"code location {code_location!r} is not deployed in the catalog of {snapshot.scope} "
            f"(deployed: {deployed or 'none'}); deploy it with arco.planning.deploy.deploy"
        )
    try:
        entries = _DEPLOYED.validate_json("[" + ",".join(chosen) + "]")
    except ValidationError as exc:
        raise DefinitionError(
            f"the deployed assets of code location {code_location!r} are malformed: {exc}; deploy it again"
        ) from None
    return CodeLocationManifest.assemble(code_location, _pairs(entries), verify=verify)


def _pairs(entries: Iterable[DeployedAsset]) -> list[tuple[AssetSpec, str]]:
    return [(entry.spec, entry.fingerprint) for entry in entries]
