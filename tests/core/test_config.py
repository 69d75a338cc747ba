from __future__ import annotations

from pathlib import Path

import pytest

from arco.core.config import DEFAULT_TASK_QUEUE, ArcoSettings
from arco.core.errors import ConfigError
from arco.core.scope import Scope


def test_defaults_without_environment() -> None:
    settings = ArcoSettings.from_env({})
    assert settings.task_queue == DEFAULT_TASK_QUEUE
    assert settings.scope == Scope("default", "default")
    assert settings.temporal_address == "127.0.0.1:7233"
    assert settings.temporal_namespace == "default"


def test_arco_variables_are_read() -> None:
    settings = ArcoSettings.from_env(
        {
            "ARCO_CATALOG_ROOT": "gs://bucket/arco",
            "ARCO_TENANT": "acme",
            "ARCO_WORKSPACE": "prod",
            "ARCO_TASK_QUEUE": "cp",
            "ARCO_TEMPORAL_ADDRESS": "temporal.internal:7233",
        }
    )
    assert settings.catalog_root == "gs://bucket/arco"
    assert settings.scope == Scope("acme", "prod")
    assert settings.task_queue == "cp"
    assert settings.temporal_address == "temporal.internal:7233"


def test_temporal_envconfig_is_honoured_and_arco_overrides_it() -> None:
    env = {"TEMPORAL_ADDRESS": "10.0.0.5:7233", "TEMPORAL_NAMESPACE": "prod-ns"}
    settings = ArcoSettings.from_env(env)
    assert settings.temporal_address == "10.0.0.5:7233"
    assert settings.temporal_namespace == "prod-ns"
    settings = ArcoSettings.from_env({**env, "ARCO_TEMPORAL_NAMESPACE": "mine"})
    assert settings.temporal_namespace == "mine"


def test_api_key_is_not_shown_in_repr() -> None:
    settings = ArcoSettings.from_env({"TEMPORAL_API_KEY": "secret-key-123"})
    assert settings.temporal_api_key == "secret-key-123"
    assert "secret-key-123" not in repr(settings)


def test_overrides_win_and_none_is_ignored() -> None:
    settings = ArcoSettings.from_env({"ARCO_TASK_QUEUE": "env-q"}, task_queue="cli-q", catalog_root=None)
    assert settings.task_queue == "cli-q"
    assert settings.catalog_root == ".arco/catalog"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ARCO_TENANT": "../etc"}, "ARCO_TENANT"),
        ({"ARCO_WORKSPACE": "A B"}, "ARCO_WORKSPACE"),
        ({"ARCO_TEMPORAL_ADDRESS": "no-port"}, "ARCO_TEMPORAL_ADDRESS"),
        ({"ARCO_TEMPORAL_ADDRESS": "host:99999"}, "ARCO_TEMPORAL_ADDRESS"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        ArcoSettings.from_env(env)


def test_settings_are_frozen() -> None:
    settings = ArcoSettings.from_env({})
    with pytest.raises(ValueError, match="frozen"):
        settings.task_queue = "x"  # type: ignore[misc]


def test_an_invalid_temporal_address_names_the_variable_the_user_set() -> None:
    with pytest.raises(ConfigError) as raised:
        ArcoSettings.from_env({"TEMPORAL_ADDRESS": "no-port"})
    assert str(raised.value).startswith("invalid Arco configuration: TEMPORAL_ADDRESS: ")
    assert "ARCO_TEMPORAL_ADDRESS" not in str(raised.value)


def test_an_invalid_address_from_a_profile_names_the_profile(tmp_path: Path) -> None:
    config = tmp_path / "temporal.toml"
    config.write_text('[profile.staging]\naddress = "no-port"\n')
    env = {"TEMPORAL_CONFIG_FILE": str(config), "ARCO_TEMPORAL_PROFILE": "staging"}
    with pytest.raises(ConfigError) as raised:
        ArcoSettings.from_env(env)
    assert "Temporal client configuration (profile 'staging'): " in str(raised.value)
    assert "ARCO_TEMPORAL_ADDRESS" not in str(raised.value)


def test_a_profile_override_wins_over_the_environment_for_the_values_it_loads(tmp_path: Path) -> None:
    config = tmp_path / "temporal.toml"
    config.write_text('[profile.a]\naddress = "a.example:7233"\n[profile.b]\naddress = "b.example:7233"\n')
    env = {"TEMPORAL_CONFIG_FILE": str(config), "ARCO_TEMPORAL_PROFILE": "a"}
    assert ArcoSettings.from_env(env).temporal_address == "a.example:7233"
    settings = ArcoSettings.from_env(env, temporal_profile="b")
    assert settings.temporal_profile == "b"
    assert settings.temporal_address == "b.example:7233"


@pytest.mark.parametrize("port", ["\u0667\u0662\u0663\u0663", "\u00b2"])
def test_temporal_address_port_must_be_ascii_digits(port: str) -> None:
    with pytest.raises(ConfigError, match=r"ARCO_TEMPORAL_ADDRESS.*is not host:port"):
        ArcoSettings.from_env({"ARCO_TEMPORAL_ADDRESS": f"host:{port}"})


def test_a_namespace_template_gives_each_tenant_its_own_namespace() -> None:
    env = {"ARCO_TEMPORAL_NAMESPACE": "arco-{tenant}", "ARCO_TENANT": "acme"}
    settings = ArcoSettings.from_env(env)
    assert settings.temporal_namespace == "arco-acme"
    assert settings.namespace_per_tenant
    assert settings.namespace_for("globex") == "arco-globex"
    # A command's --tenant picks that tenant's namespace, not the one of ARCO_TENANT.
    assert ArcoSettings.from_env(env, tenant="globex").temporal_namespace == "arco-globex"
    # Temporal Cloud names end in the account id; Temporal's own variable takes the template too.
    cloud = ArcoSettings.from_env({"TEMPORAL_NAMESPACE": "arco-{tenant}.a1b2c", "ARCO_TENANT": "acme"})
    assert cloud.temporal_namespace == "arco-acme.a1b2c"


def test_a_plain_namespace_is_shared_by_every_tenant() -> None:
    settings = ArcoSettings.from_env({"ARCO_TEMPORAL_NAMESPACE": "arco", "ARCO_TENANT": "acme"})
    assert settings.temporal_namespace == "arco"
    assert not settings.namespace_per_tenant
    assert settings.namespace_for("globex") == "arco"


@pytest.mark.parametrize(
    "namespace",
    ["arco-{tenat}", "arco-{tenant", "arco-}", "arco-{tenant!r}", "arco-{}", "arco-{0}", "a b", "a\nb"],
)
def test_a_bad_namespace_setting_names_the_variable_and_the_placeholder(namespace: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"ARCO_TEMPORAL_NAMESPACE: .*(the only placeholder is \{tenant\}|expected a non-empty name)",
    ):
        ArcoSettings.from_env({"ARCO_TEMPORAL_NAMESPACE": namespace})


def test_worker_versioning_settings_default_to_unversioned_and_the_package_version() -> None:
    import importlib.metadata

    settings = ArcoSettings.from_env({})
    assert settings.deployment_name is None
    assert settings.build_id == importlib.metadata.version("arco")
    versioned = ArcoSettings.from_env({"ARCO_DEPLOYMENT_NAME": "arco", "ARCO_BUILD_ID": "2026.12.08"})
    assert (versioned.deployment_name, versioned.build_id) == ("arco", "2026.12.08")
    # An option wins over the environment, as everywhere.
    assert ArcoSettings.from_env({"ARCO_BUILD_ID": "a"}, build_id="b").build_id == "b"


@pytest.mark.parametrize(
    ("env", "blamed"),
    [
        ({"ARCO_BUILD_ID": " v1"}, "ARCO_BUILD_ID"),
        ({"ARCO_DEPLOYMENT_NAME": "x" * 256}, "ARCO_DEPLOYMENT_NAME"),
        ({"ARCO_DEPLOYMENT_NAME": "  "}, "ARCO_DEPLOYMENT_NAME"),
    ],
)
def test_a_bad_deployment_name_or_build_id_is_one_clear_error(env: dict[str, str], blamed: str) -> None:
    with pytest.raises(ConfigError, match=rf"{blamed}: .*must be a non-empty name of at most 255 characters"):
        ArcoSettings.from_env(env)


def test_the_control_plane_refuses_a_blank_build_id_with_exit_code_2() -> None:
    from click.testing import CliRunner

    from arco.cli.main import cli

    result = CliRunner().invoke(cli, ["worker", "control-plane", "--build-id", " "], env={})
    assert result.exit_code == 2, result.output
    assert "option build-id: Value error, ' ' must be a non-empty name" in result.output
