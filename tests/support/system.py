"""Optional system binaries: a test that needs one fails under CI when it is missing, and skips elsewhere.

``.ci/run`` installs every Debian package named in :data:`SYSTEM_PACKAGES` before ``make test`` and exports
``ARCO_CI=1``; ``tests/test_system_packages.py`` checks that the two lists agree. On a user's clone the test skips
and its reason is the command that installs the package.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

#: Binary the suite looks for -> the Debian package that provides it (what ``.ci/run`` installs).
SYSTEM_PACKAGES: dict[str, str] = {"dot": "graphviz", "chromium": "chromium"}


def in_ci() -> bool:
    """Whether the suite runs under CI: ``.ci/run`` exports ``ARCO_CI=1``; hosted CI services set ``CI=true``."""
    return os.environ.get("ARCO_CI") == "1" or os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test on a user's clone; fail it under CI, where nothing may skip for a missing prerequisite."""
    __tracebackhide__ = True  # report the test that asked, not this helper
    if in_ci():
        pytest.fail(f"{reason} (under CI nothing skips: .ci/run must provide it)", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """The path of the system binary ``name``; skips (fails under CI) with the command that installs it.

    Args:
        name: the executable, a key of :data:`SYSTEM_PACKAGES` (so ``.ci/run`` is known to install it).

    Returns:
        The binary's full path.
    """
    __tracebackhide__ = True
    package = SYSTEM_PACKAGES[name]
    path = shutil.which(name)
    if path is None:
        skip_or_fail(
            f"`{name}` is not installed: install it with `sudo apt-get install -y {package}` "
            f"(Debian/Ubuntu; the package is `{package}` on other systems too) to run this test"
        )
    return path
