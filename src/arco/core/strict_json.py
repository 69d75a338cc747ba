"""The strict JSON reader every wire message goes through (envelopes, callbacks, partition-key protobuf JSON).

Python's ``json.loads`` is lenient where the original Arco's reader (Rust ``serde_json``) is not; read with it, a
message could mean one thing to Arco and another to the original. :func:`load_strict_json` refuses, each with a
message naming the problem and the fix:

- a key given twice in one object (``json.loads`` keeps the last; ``serde_json`` refuses a duplicate field);
- ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON, and numbers too large for a float (``1e400``);
- text that is not UTF-8 (``json.loads`` also guesses UTF-16 and UTF-32 from bytes), or that starts with a BOM;
- a string holding an unpaired UTF-16 surrogate escape (``"\\ud800"``), which is not text;
- nesting too deep to read (``serde_json`` stops at 128 levels; so does this reader).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from arco.core.errors import ArcoError, ContractError

#: The deepest nesting read, as ``serde_json``'s default recursion limit.
MAX_DEPTH = 128
#: A ``\\u`` escape of a UTF-16 surrogate; only text holding one needs the slower check for unpaired ones.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> float:
    raise ValueError(f'{name} is not a JSON number; send a finite number, or a string such as "NaN"')


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is too large for a 64-bit float; send a smaller number")
    return value


def _depth(value: object) -> int:
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def load_strict_json(
    data: str | bytes, *, what: str = "message", error: type[ArcoError] = ContractError
) -> Any:
    """Parse JSON text strictly (see the module docstring).

    Args:
        data: The JSON text, or its UTF-8 bytes.
        what: What the text is, for error messages (``"WorkerDispatchEnvelope"``).
        error: The error type raised.

    Returns:
        The decoded value (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` or ``None``).

    Raises:
        ArcoError: of type ``error``, naming the problem and the fix.
    """

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, value in items:
            if name in found:
                raise error(f"{what} has the key {name!r} twice in one object; give each key once")
            found[name] = value
        return found

    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(
                f"{what} is not UTF-8 text (byte {exc.start} is invalid); send JSON encoded as UTF-8"
            ) from None
    else:
        text = data
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"{what} holds an unpaired UTF-16 surrogate, which is not text") from None
    if text.startswith("\ufeff"):
        raise error(f"{what} starts with a byte order mark; send JSON without a BOM")
    try:
        value = json.loads(
            text, object_pairs_hook=pairs, parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except ArcoError:
        raise
    except RecursionError:
        raise error(f"{what} is nested too deeply; at most {MAX_DEPTH} levels are read") from None
    except ValueError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) is not None:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise error(
                f"{what} has a string with an unpaired UTF-16 surrogate escape (such as \\ud800), which is not "
                "text; escape astral characters as a surrogate pair or send them as UTF-8"
            ) from None
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise error(f"{what} is nested too deeply; at most {MAX_DEPTH} levels are read")
    return value
