"""Deterministic ULIDs inside workflow code: time from ``workflow.now()``, randomness from ``workflow.random()``.

Replays produce the same ids, so events written by a retried or replayed workflow task keep their ids.
"""

from __future__ import annotations

from temporalio import workflow

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def workflow_ulid() -> str:
    """A new ULID that is stable under replay."""
    millis = int(workflow.now().timestamp() * 1000)
    value = (millis << 80) | workflow.random().getrandbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
