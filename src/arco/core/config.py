"""Arco's settings: one frozen model, read once from ``ARCO_*`` environment variables at the process edge.

The Temporal connection follows Temporal's own environment configuration (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings and ``temporal.toml`` profiles, through
:mod:`temporalio.envconfig`); ``ARCO_TEMPORAL_ADDRESS`` and ``ARCO_TEMPORAL_NAMESPACE`` override it when set.
Only the worker and CLI layers call :meth:`ArcoSettings.from_env`; everything below them receives values.

``ARCO_TENANT`` is the caller's own claim, not an identity: across tenants, who may start, see and cancel runs is
decided by Temporal's namespace permissions. A namespace that contains ``{tenant}`` (``arco-{tenant}``) gives every
tenant its own Temporal namespace: each process connects to the namespace of its tenant, and its workers serve that
tenant only (docs/runs.md, "Isolation model for run control").
"""

from __future__ import annotations

import importlib.metadata
import os
import string
from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from arco.core.errors import ConfigError
from arco.core.scope import Scope, TenantId, WorkspaceId

#: Task queue of Arco's control plane (run, planning and compaction workflows and their activities).
DEFAULT_TASK_QUEUE = "arco-control-plane"
#: Default worker queue of executor workers (where `execute_task` activities for user code run).
DEFAULT_EXECUTOR_QUEUE = "default"
DEFAULT_TEMPORAL_ADDRESS = "127.0.0.1:7233"
#: The one placeholder a Temporal namespace setting may hold: ``arco-{tenant}`` is one namespace per tenant.
TENANT_PLACEHOLDER = "{tenant}"

_ENV_FIELDS: dict[str, str] = {
    "ARCO_CATALOG_ROOT": "catalog_root",
    "ARCO_DATA_ROOT": "data_root",
    "ARCO_STATE_DIR": "state_dir",
    "ARCO_TENANT": "tenant",
    "ARCO_WORKSPACE": "workspace",
    "ARCO_TEMPORAL_ADDRESS": "temporal_address",
    "ARCO_TEMPORAL_NAMESPACE": "temporal_namespace",
    "ARCO_TEMPORAL_PROFILE": "temporal_profile",
    "ARCO_TASK_QUEUE": "task_queue",
    "ARCO_EXECUTOR_QUEUE": "executor_queue",
    "ARCO_DEPLOYMENT_NAME": "deployment_name",
    "ARCO_BUILD_ID": "build_id",
}

#: Settings fields read from Temporal's own environment configuration -> the variable that sets them.
_TEMPORAL_ENV_FIELDS: dict[str, str] = {
    "temporal_address": "TEMPORAL_ADDRESS",
    "temporal_namespace": "TEMPORAL_NAMESPACE",
    "temporal_api_key": "TEMPORAL_API_KEY",
}


def _package_version() -> str:
    """Arco's installed version (the default build id of a versioned worker)."""
    try:
        return importlib.metadata.version("arco")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


class ArcoSettings(BaseModel):
    """Process-wide settings of an Arco worker or CLI invocation.

    Attributes:
        catalog_root: URI or path of the catalog root (``./.arco/catalog``, ``gs://bucket/arco``, ``s3://...``).
        data_root: URI or path under which assets write their data files.
        state_dir: Folder for local state of the embedded stack (Temporal SQLite file, logs).
        tenant: Default tenant of CLI commands.
        workspace: Default workspace of CLI commands.
        temporal_address: ``host:port`` of the Temporal frontend.
        temporal_namespace_template: The namespace setting as given, when it names one namespace per tenant
            (``arco-{tenant}``); ``None`` when every tenant shares :attr:`temporal_namespace`.
        temporal_namespace: The Temporal namespace of ``tenant``, which clients and workers connect to
            (``arco-acme`` for tenant ``acme`` and ``ARCO_TEMPORAL_NAMESPACE=arco-{tenant}``).
        temporal_api_key: API key for Temporal Cloud or a secured cluster (from ``TEMPORAL_API_KEY``).
        temporal_tls: Whether to connect with TLS (from Temporal's environment configuration).
        temporal_profile: ``temporal.toml`` profile to load, if any.
        task_queue: Control-plane task queue.
        executor_queue: Default worker queue of executor workers.
        deployment_name: Temporal Worker Deployment of the control-plane workers; when set, they poll with worker
            versioning as version ``deployment_name``/``build_id`` and every run stays on the version it started
            on (docs/operations.md, Upgrades). ``None`` (the default): unversioned workers.
        build_id: Build id of this worker's version within ``deployment_name``; Arco's package version by default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    catalog_root: str = ".arco/catalog"
    data_root: str = ".arco/data"
    state_dir: str = ".arco"
    tenant: TenantId = "default"
    workspace: WorkspaceId = "default"
    temporal_address: str = DEFAULT_TEMPORAL_ADDRESS
    temporal_namespace_template: str | None = None
    # Validated even when defaulted: a template given on its own still resolves to the tenant's namespace.
    temporal_namespace: str = Field(default="default", validate_default=True)
    temporal_api_key: str | None = Field(default=None, repr=False)
    temporal_tls: bool = False
    temporal_profile: str | None = None
    task_queue: str = DEFAULT_TASK_QUEUE
    executor_queue: str = DEFAULT_EXECUTOR_QUEUE
    deployment_name: str | None = None
    build_id: str = Field(default_factory=_package_version)

    @field_validator("catalog_root", "data_root", "state_dir", "task_queue", "executor_queue")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("deployment_name", "build_id")
    @classmethod
    def _version_part(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value != value.strip() or len(value) > 255):
            raise ValueError(
                f"{value!r} must be a non-empty name of at most 255 characters without surrounding spaces"
            )
        return value

    @field_validator("temporal_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port (for example 127.0.0.1:7233)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _keep_the_template(cls, data: Any) -> Any:
        # A namespace with a placeholder is a template: keep it, and resolve the namespace for the tenant below.
        if isinstance(data, dict):
            namespace = data.get("temporal_namespace")
            if isinstance(namespace, str) and ("{" in namespace or "}" in namespace):
                return {**data, "temporal_namespace_template": namespace}
        return data

    @field_validator("temporal_namespace")
    @classmethod
    def _namespace_of_the_tenant(cls, value: str, info: ValidationInfo) -> str:
        template = info.data.get("temporal_namespace_template")
        if template is None:
            return namespace_name(value)
        tenant = info.data.get("tenant")
        if tenant is None:  # the tenant is invalid: its own error says so
            return value
        return namespace_of_tenant(template, tenant)

    @property
    def namespace_per_tenant(self) -> bool:
        """Whether every tenant has its own Temporal namespace (the setting holds ``{tenant}``)."""
        return self.temporal_namespace_template is not None

    def namespace_for(self, tenant: TenantId) -> str:
        """The Temporal namespace of ``tenant``: its own with a ``{tenant}`` template, else the shared one."""
        if self.temporal_namespace_template is None:
            return self.temporal_namespace
        return namespace_of_tenant(self.temporal_namespace_template, tenant)

    @property
    def scope(self) -> Scope:
        """The default tenant/workspace scope."""
        return Scope(self.tenant, self.workspace)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ArcoSettings:
        """Read settings from the environment, then apply explicit overrides (CLI options).

        Args:
            env: The environment to read; the process environment by default.
            **overrides: Field values that win over the environment (``None`` values are ignored).

        Returns:
            The validated settings.

        Raises:
            ConfigError: if a variable or override has an invalid value; the message names the variable.
        """
        source = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        # An explicit override wins over the environment here too, so the profile named in the settings is the one
        # their Temporal values were loaded from.
        profile = overrides.get("temporal_profile") or source.get("ARCO_TEMPORAL_PROFILE")
        for field, value in _temporal_env(source, profile).items():
            values[field] = value
            # Blame the variable or profile the value came from, not ARCO_* variables the user never set.
            variable = _TEMPORAL_ENV_FIELDS.get(field)
            origin[field] = (
                variable
                if variable and source.get(variable)
                else f"Temporal client configuration (profile {profile or 'default'!r})"
            )
        for var, field in _ENV_FIELDS.items():
            if source.get(var):
                values[field] = source[var]
                origin[field] = var
        for field, value in overrides.items():
            if value is not None:
                values[field] = value
                origin[field] = f"option {field.replace('_', '-')}"
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else "?"
                where = origin.get(field) or _reverse_env(field)
                problems.append(f"{where}: {err['msg']}")
            raise ConfigError("invalid Arco configuration: " + "; ".join(problems)) from None


def namespace_of_tenant(template: str, tenant: str) -> str:
    """The Temporal namespace of ``tenant`` under a namespace ``template`` such as ``arco-{tenant}``.

    Raises:
        ValueError: if the template has another placeholder or stray braces, or the result is not a namespace name.
    """
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError:
        fields = [("?", "", None)]
    if any(field != ("tenant", "", None) for field in fields):
        raise ValueError(
            f"{template!r} is not a namespace template: the only placeholder is {TENANT_PLACEHOLDER} "
            f"(for example arco-{TENANT_PLACEHOLDER}); give a plain namespace name or use {TENANT_PLACEHOLDER}"
        )
    return namespace_name(template.replace(TENANT_PLACEHOLDER, tenant))


def namespace_name(name: str) -> str:
    """``name`` if it can name a Temporal namespace (not empty; no spaces, braces or control characters).

    Raises:
        ValueError: naming the expected form.
    """
    if not name or any(ch.isspace() or not ch.isprintable() or ch in "{}" for ch in name):
        raise ValueError(
            f"{name!r} is not a Temporal namespace name: expected a non-empty name without spaces, braces or "
            "control characters, such as arco-prod"
        )
    return name


def _reverse_env(field: str) -> str:
    for var, name in _ENV_FIELDS.items():
        if name == field:
            return var
    return field


def _temporal_env(env: Mapping[str, str], profile: str | None) -> dict[str, Any]:
    """Temporal's own environment configuration (TEMPORAL_* variables and temporal.toml), as settings fields."""
    from temporalio.envconfig import ClientConfigProfile

    try:
        loaded = ClientConfigProfile.load(profile=profile, override_env_vars=dict(env))
    except Exception as exc:  # the Rust loader raises plain RuntimeError/ValueError on malformed files
        raise ConfigError(
            f"cannot load Temporal client configuration (profile {profile or 'default'!r}): {exc}; "
            "check TEMPORAL_CONFIG_FILE / temporal.toml or unset TEMPORAL_* variables"
        ) from None
    out: dict[str, Any] = {}
    if loaded.address:
        out["temporal_address"] = loaded.address
    if loaded.namespace:
        out["temporal_namespace"] = loaded.namespace
    if loaded.api_key:
        out["temporal_api_key"] = loaded.api_key
    if loaded.tls is not None and not loaded.tls.disabled:
        out["temporal_tls"] = True
    return out
