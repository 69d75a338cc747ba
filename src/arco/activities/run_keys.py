"""Run-key claims: one catalog object per run key and scope, so one run key is one run whatever the workflow id.

Temporal's workflow-id reuse policy cannot carry idempotency alone: only Arco's own client asks for
``REJECT_DUPLICATE``, ``temporal workflow start`` allows reusing the id of a closed workflow, and a Temporal
Schedule appends a timestamp to every id it starts. So the plan activity claims the run key in the catalog with a
create-if-absent before it stores the plan (layout: :meth:`arco.catalog.log.layout.ScopeLayout.run_key_claim`).
A retried attempt of the same workflow execution finds its own claim and goes on; any other workflow, or another
execution under a reused id, is refused with a non-retryable ``run_key_claimed`` error that names both.
"""

from __future__ import annotations

import json

from arco.catalog.log.layout import ScopeLayout
from arco.catalog.storage import ObjectStore
from arco.core.canonical_json import canonical_bytes
from arco.core.errors import (
    CorruptObjectError,
    ObjectExistsError,
    PreconditionFailedError,
    RunKeyClaimedError,
)
from arco.core.model import ArcoModel
from arco.core.scope import Scope


class RunKeyClaim(ArcoModel):
    """The stored claim of a run key (``run-keys/{sha256}.json``).

    Attributes:
        run_key: The run key as given (or derived from the workflow id when the request had none).
        run_id: The Arco run that owns the key.
        workflow_id: The Temporal workflow id of that run.
        workflow_run_id: Temporal's id of that workflow execution (tells a reused workflow id from a retry).
        fingerprint: The plan fingerprint of the run.
    """

    run_key: str
    run_id: str
    workflow_id: str
    workflow_run_id: str
    fingerprint: str


def claim_run_key(store: ObjectStore, scope: Scope, claim: RunKeyClaim) -> RunKeyClaim:
    """Claim ``claim.run_key`` for ``claim``'s run, or join the claim this workflow execution already made.

    Returns:
        The claim now stored (``claim`` itself, also when a retried attempt finds its own earlier claim).

    Raises:
        RunKeyClaimedError: when another workflow execution owns the run key; the message names both
            workflow ids and the run that owns the key.
    """
    key = ScopeLayout(scope).run_key_claim(claim.run_key)
    body = canonical_bytes(claim.to_wire())
    for _ in range(3):
        try:
            store.create_if_absent(key, body)
            return claim
        except ObjectExistsError:
            pass
        data, version = store.read_versioned(key)
        try:
            existing = RunKeyClaim.model_validate(json.loads(data))
        except ValueError as exc:
            raise CorruptObjectError(f"run-key claim {key} cannot be read: {exc}") from None
        same_execution = (existing.workflow_id, existing.workflow_run_id, existing.run_id) == (
            claim.workflow_id,
            claim.workflow_run_id,
            claim.run_id,
        )
        if not same_execution:
            raise RunKeyClaimedError(
                f"run key {claim.run_key!r} of {scope} is already claimed by run {existing.run_id} of workflow "
                f"{existing.workflow_id!r} (plan fingerprint {existing.fingerprint}); workflow "
                f"{claim.workflow_id!r} cannot start a second run with it: follow workflow "
                f"{existing.workflow_id!r} instead, or start with a new run key"
            )
        if existing.fingerprint == claim.fingerprint:
            return claim
        # An earlier attempt of this same execution planned differently (the catalog changed between attempts)
        # and never handed its plan to the workflow: the claim follows the plan the workflow will run.
        try:
            store.compare_and_swap(key, body, version)
            return claim
        except PreconditionFailedError:
            continue
    raise RunKeyClaimedError(
        f"run key {claim.run_key!r} of {scope} kept changing while it was claimed; retry"
    )
