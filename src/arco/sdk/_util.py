"""Small helpers shared by the SDK modules."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from arco.core.errors import DefinitionError

#: An importable ``module:qualname`` reference.
REFERENCE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
)


def function_reference(function: Callable[..., Any], what: str) -> str:
    """The importable ``module:qualname`` of a module-level function.

    Raises:
        DefinitionError: if a worker could not import the function by name (a lambda, a nested function, or a
            function of ``__main__``).
    """
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    reference = f"{module}:{qualname}"
    if not module or not qualname or REFERENCE.fullmatch(reference) is None or module == "__main__":
        raise DefinitionError(
            f"{what}: function {reference} cannot be imported by name by a worker; define it at module level "
            "(not as a lambda, a nested function or in __main__) and pass that function"
        )
    return reference


def whole_seconds(value: Any, what: str) -> Any:
    """Turn a ``timedelta`` of whole seconds into ``int`` seconds; other values pass through unchanged.

    Raises:
        DefinitionError: if the ``timedelta`` has a fraction of a second.
    """
    if isinstance(value, datetime.timedelta):
        if value % datetime.timedelta(seconds=1):
            raise DefinitionError(f"{what} {value} is not a whole number of seconds; round it")
        return int(value.total_seconds())
    return value
