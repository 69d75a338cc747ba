"""A worker serves one Temporal namespace: its tenant's, with Arco's search attributes registered.

``ARCO_TENANT`` is the caller's own claim. With one namespace per tenant (``ARCO_TEMPORAL_NAMESPACE=arco-{tenant}``),
Temporal's namespace permissions decide who may start, see and cancel a tenant's runs. A client allowed into
tenant A's namespace could still start a workflow whose input names tenant B; A's control-plane worker would then
plan, record and compact in B's catalog scope. :class:`TenantGuard` closes that door: the worker of a tenant's
namespace refuses, before any side effect, every activity whose input names another tenant. Workflows do no I/O, so
guarding the activities guards everything the control plane writes; the executor worker already refuses an
envelope of another scope (``executor_mismatch``).

:func:`missing_search_attributes` tells a worker, before it serves a namespace, which of Arco's search attributes
the namespace lacks: without them every run would fail when it records its state.
:func:`register_search_attributes` adds the missing ones (``arco admin register-search-attributes``, the compose
``setup`` job): idempotent, so a release that adds an attribute registers just that one on an existing cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from arco.core.errors import ConfigError, InvalidScopeError
from arco.core.visibility import SEARCH_ATTRIBUTES


class TenantGuard(Interceptor):
    """Worker interceptor that refuses activity inputs naming a tenant other than the worker's own.

    Args:
        tenant: The tenant whose namespace the worker serves.
        namespace: That namespace (named in the refusal, with the fix).
    """

    def __init__(self, tenant: str, namespace: str) -> None:
        self.tenant = tenant
        self.namespace = namespace

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap activity execution with the tenant check."""
        return _GuardedActivities(next, self)

    def refusal(self, tenant: str) -> ApplicationError | None:
        """The non-retryable error for an input of ``tenant``, or ``None`` when it is the worker's own."""
        if tenant == self.tenant:
            return None
        return ApplicationError(
            f"tenant {tenant!r} is not served in Temporal namespace {self.namespace!r}: this namespace and its "
            f"workers belong to tenant {self.tenant!r}; start runs of tenant {tenant!r} in that tenant's own "
            f"namespace (ARCO_TENANT={tenant} with the same ARCO_TEMPORAL_NAMESPACE template)",
            type=InvalidScopeError.code,
            non_retryable=True,
        )


class _GuardedActivities(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, guard: TenantGuard) -> None:
        super().__init__(next)
        self._guard = guard

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        for tenant in sorted({tenant for arg in input.args for tenant in tenants_named(arg)}):
            refusal = self._guard.refusal(tenant)
            if refusal is not None:
                raise refusal
        return await super().execute_activity(input)


def tenants_named(value: object) -> Iterator[str]:
    """The tenants an activity input names: its ``tenant_id``, its ``scope``'s tenant, and those of its ``request``.

    Arco's inputs carry their scope in one of these shapes (``RunRequest``, ``PlanRunInput.request``,
    ``RecordEventsInput``, ``CompactionInput``, ``HealthCheckInput``); an input without a scope names none.
    """
    tenant = getattr(value, "tenant_id", None)
    if isinstance(tenant, str):
        yield tenant
    scope_tenant = getattr(getattr(value, "scope", None), "tenant", None)
    if isinstance(scope_tenant, str):
        yield scope_tenant
    request = getattr(value, "request", None)
    if request is not None and request is not value:
        yield from tenants_named(request)


async def missing_search_attributes(client: Client) -> list[str] | None:
    """Arco's search attributes not registered in the client's namespace, sorted; ``None`` if it cannot be asked.

    A client without the operator permission to list search attributes gets ``None`` (the caller goes on and says
    it could not check), not an error.
    """
    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError:
        return None
    return sorted(name for name in SEARCH_ATTRIBUTES if name not in response.custom_attributes)


def register_commands(namespace: str, names: list[str]) -> str:
    """The ``temporal`` commands that register ``names`` of Arco's search attributes in ``namespace``."""
    return "\n".join(
        f"temporal operator search-attribute create --namespace {namespace} --name {name} "
        f"--type {SEARCH_ATTRIBUTES[name]}"
        for name in names
    )


def _indexed_type(name: str) -> int:
    """The protobuf value of a type name of :data:`SEARCH_ATTRIBUTES` (``KeywordList`` -> KEYWORD_LIST)."""
    return int(IndexedValueType.Value("INDEXED_VALUE_TYPE_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()))


@dataclass(frozen=True)
class Registration:
    """What :func:`register_search_attributes` did in one namespace.

    Attributes:
        namespace: The namespace.
        added: Attributes it registered, sorted.
        present: Attributes that were already there with Arco's type, sorted.
    """

    namespace: str
    added: list[str]
    present: list[str]


async def register_search_attributes(client: Client, *, dry_run: bool = False) -> Registration:
    """Register those of Arco's search attributes that the client's namespace lacks; leave the others alone.

    Idempotent: a second call adds nothing. With ``dry_run`` nothing is registered and ``added`` lists what would
    be.

    Raises:
        ConfigError: if an attribute exists with another type (Temporal cannot change it: the namespace needs the
            attribute removed and registered again, or another namespace), or if the namespace cannot be asked or
            changed (no operator permission; Temporal Cloud registers attributes through its own tools).
    """
    namespace = client.namespace
    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as exc:
        raise ConfigError(
            f"cannot list the search attributes of Temporal namespace {namespace!r}: {exc.message}; check the "
            "namespace exists and that this client has the operator permission (on Temporal Cloud register them "
            "with tcld or the Cloud UI instead):\n" + register_commands(namespace, sorted(SEARCH_ATTRIBUTES))
        ) from None
    existing = dict(response.custom_attributes)
    wrong = {
        name: IndexedValueType.Name(existing[name]).removeprefix("INDEXED_VALUE_TYPE_")
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name in existing and existing[name] != _indexed_type(kind)
    }
    if wrong:
        raise ConfigError(
            f"Temporal namespace {namespace!r} has Arco's search attribute(s) with another type: "
            + ", ".join(
                f"{name} is {kind}, Arco needs {SEARCH_ATTRIBUTES[name]}"
                for name, kind in sorted(wrong.items())
            )
            + "; Temporal cannot change an attribute's type: remove it "
            "(temporal operator search-attribute remove --namespace NAMESPACE --name NAME) and run this again"
        )
    missing = sorted(name for name in SEARCH_ATTRIBUTES if name not in existing)
    present = sorted(name for name in SEARCH_ATTRIBUTES if name in existing)
    if missing and not dry_run:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes={
                        name: IndexedValueType.ValueType(_indexed_type(SEARCH_ATTRIBUTES[name]))
                        for name in missing
                    },
                )
            )
        except RPCError as exc:
            raise ConfigError(
                f"cannot register search attributes {', '.join(missing)} in Temporal namespace {namespace!r}: "
                f"{exc.message}; register them with an operator's credentials:\n"
                + register_commands(namespace, missing)
            ) from None
    return Registration(namespace=namespace, added=missing, present=present)
