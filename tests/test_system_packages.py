"""Nothing skips in CI: ``.ci/run`` installs every system package a test may require, and exports ``ARCO_CI=1``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.system import SYSTEM_PACKAGES, in_ci, require_binary

CI_RUN = Path(__file__).resolve().parents[1] / ".ci" / "run"


def _ci_packages() -> set[str]:
    found = re.search(r"^SYSTEM_PACKAGES=\((?P<names>[^)]*)\)", CI_RUN.read_text(encoding="utf-8"), re.M)
    assert found is not None, ".ci/run lost its SYSTEM_PACKAGES=(...) line"
    return set(found.group("names").split())


def test_ci_installs_every_package_the_suite_requires() -> None:
    assert _ci_packages() == set(SYSTEM_PACKAGES.values())
    assert re.search(r"^export ARCO_CI=1$", CI_RUN.read_text(encoding="utf-8"), re.M)


def test_a_missing_binary_skips_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ARCO_CI", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match=r"sudo apt-get install -y graphviz"):
        require_binary("dot")


@pytest.mark.parametrize(("variable", "value"), [("ARCO_CI", "1"), ("CI", "true")])
def test_a_missing_binary_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
) -> None:
    monkeypatch.delenv("ARCO_CI", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match=r"under CI nothing skips"):
        require_binary("dot")
