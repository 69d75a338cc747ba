"""Identifiers: ULIDs for runs, tasks and events; UUIDv7 for catalog entities.

Both kinds sort by creation time, so ids double as cheap time-ordered keys in ledger and Parquet files.

- A ULID is 26 Crockford base32 characters (upper case on output): a 48-bit millisecond timestamp and 80 bits
  of randomness. Within one process :func:`new_ulid` is strictly monotonic and thread-safe: within the same
  millisecond (or if the wall clock steps backwards) the previous randomness is incremented by one instead of
  drawn afresh; if it would overflow, the generator waits for the next millisecond.
- A UUIDv7 is the usual 36-character lower-case hex form with version 7 and the RFC 9562 variant.

Parsing is strict (no Crockford ``I``/``L``/``O`` aliases, no braces or ``urn:uuid:`` prefixes) and normalises
case, so one id has one spelling.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator
from ulid import ULID

from arco.core.errors import InvalidIdError

_ULID_TEXT = re.compile(r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}")
_CROCKFORD_ALIASES = {"I": "1", "L": "1", "O": "0"}
_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-([0-9a-fA-F])[0-9a-fA-F]{3}-([0-9a-fA-F])[0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
)

MAX_ULID_TIMESTAMP_MS = 2**48 - 1
_RANDOM_BITS = 80
_MAX_RANDOM = 2**_RANDOM_BITS - 1


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


class UlidGenerator:
    """A strictly monotonic, thread-safe ULID source.

    The module-level :func:`new_ulid` uses one shared instance; tests build their own with a fake clock.

    Args:
        clock: Current Unix time in milliseconds.
        randomness: Returns ``n`` random bytes.
        sleep: Sleeps for the given seconds; used only when the 80 random bits of one millisecond run out.
        max_overflow_wait_s: How long to wait for the clock to reach the next millisecond after an overflow
            before moving the timestamp forward by one millisecond instead (only if the clock is stuck or was
            set back); keeps every call bounded.
    """

    def __init__(
        self,
        clock: Callable[[], int] | None = None,
        randomness: Callable[[int], bytes] = os.urandom,
        sleep: Callable[[float], None] = time.sleep,
        max_overflow_wait_s: float = 1.0,
    ) -> None:
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._randomness = randomness
        self._sleep = sleep
        self._max_overflow_polls = max(1, int(max_overflow_wait_s / 0.0005))
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def _fresh_random(self) -> int:
        return int.from_bytes(self._randomness(_RANDOM_BITS // 8), "big")

    def _now(self) -> int:
        now = self._clock()
        if not 0 <= now <= MAX_ULID_TIMESTAMP_MS:
            raise InvalidIdError(
                f"cannot make a ULID at clock time {now} ms: expected 0..{MAX_ULID_TIMESTAMP_MS} "
                "(check the system clock)"
            )
        return now

    def new(self) -> str:
        """Return a new ULID, greater than every ULID this generator returned before.

        Raises:
            InvalidIdError: if the clock is outside the ULID timestamp range.
        """
        with self._lock:
            now = self._now()
            if now > self._last_ms:
                self._last_ms, self._last_random = now, self._fresh_random()
            elif self._last_random < _MAX_RANDOM:
                # Same millisecond, or the clock stepped back: stay on the last timestamp and count up.
                self._last_random += 1
            else:
                self._last_ms, self._last_random = self._after_overflow(), self._fresh_random()
            value = (self._last_ms << _RANDOM_BITS) | self._last_random
        return str(ULID.from_bytes(value.to_bytes(16, "big")))

    def _after_overflow(self) -> int:
        for _ in range(self._max_overflow_polls):
            self._sleep(0.0005)
            now = self._now()
            if now > self._last_ms:
                return now
        if self._last_ms >= MAX_ULID_TIMESTAMP_MS:
            raise InvalidIdError("cannot make a ULID: the ULID timestamp range is exhausted")
        return self._last_ms + 1


_default_ulids = UlidGenerator()
_uuid7_lock = threading.Lock()
#: Millisecond and counter of the last UUIDv7 made by this process.
_uuid7_state: list[int] = [0, 0]


def new_ulid() -> str:
    """Return a new ULID (26 upper-case Crockford base32 characters), monotonic within this process."""
    return _default_ulids.new()


def parse_ulid(text: str) -> str:
    """Validate a ULID and return it in upper case.

    Args:
        text: 26 Crockford base32 characters, any case.

    Returns:
        The ULID in upper case.

    Raises:
        InvalidIdError: if ``text`` is not a ULID.
    """
    if not isinstance(text, str):
        raise InvalidIdError(f"ULID must be a string, got {type(text).__name__}")
    if _ULID_TEXT.fullmatch(text) is None:
        hint = ""
        if len(text) != 26:
            hint = f" (it has {len(text)} characters)"
        elif any(ch in _CROCKFORD_ALIASES for ch in text.upper()):
            hint = " (the letters I, L, O and U are not used; I and L mean 1, O means 0)"
        elif text[:1] > "7":
            hint = " (the first character must be 0-7, or the timestamp overflows 48 bits)"
        raise InvalidIdError(
            f"{_shown(text)} is not a ULID{hint}: expected 26 Crockford base32 characters "
            "(0-9 and A-Z without I, L, O, U), for example '01ARZ3NDEKTSV4RRFFQ69G5FAV'"
        )
    return text.upper()


def ulid_timestamp_ms(text: str) -> int:
    """The Unix time in milliseconds encoded in a ULID.

    Raises:
        InvalidIdError: if ``text`` is not a ULID.
    """
    return ULID.from_str(parse_ulid(text)).milliseconds


def new_uuid7() -> str:
    """Return a new UUIDv7 in lower-case hex form, monotonic within this process.

    RFC 9562 method 1: the 12 bits after the version hold a counter that starts at a random value below 2048 in
    each millisecond and counts up, so ids stay ordered within a millisecond without running ahead of the clock
    (the timestamp moves on early only after 2,048+ ids in one millisecond). The last 62 bits are random.
    """
    with _uuid7_lock:
        millis = time.time_ns() // 1_000_000
        last, counter = _uuid7_state
        if millis > last:
            counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:
            millis = last
            counter += 1
            if counter > 0xFFF:
                millis, counter = last + 1, int.from_bytes(os.urandom(2), "big") & 0x7FF
        _uuid7_state[:] = [millis, counter]
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62
    value |= int.from_bytes(os.urandom(8), "big") & (2**62 - 1)
    return str(uuid.UUID(int=value))


def parse_uuid7(text: str) -> str:
    """Validate a UUIDv7 and return it in lower case.

    Args:
        text: The 36-character hyphenated hex form, any case.

    Returns:
        The UUID in lower case.

    Raises:
        InvalidIdError: if ``text`` is not a hyphenated UUID of version 7 with the RFC 9562 variant.
    """
    if not isinstance(text, str):
        raise InvalidIdError(f"UUIDv7 must be a string, got {type(text).__name__}")
    match = _UUID_TEXT.fullmatch(text)
    expected = "expected the hyphenated form xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx"
    if match is None:
        raise InvalidIdError(f"{_shown(text)} is not a UUID: {expected}")
    version, variant = match.group(1), match.group(2).lower()
    if version != "7":
        raise InvalidIdError(f"{_shown(text)} is a version-{version} UUID, not version 7: {expected}")
    if variant not in "89ab":
        raise InvalidIdError(f"{_shown(text)} does not have the RFC 9562 variant: {expected}")
    return text.lower()


#: A ULID field, validated and normalised to upper case.
Ulid = Annotated[str, AfterValidator(parse_ulid)]
#: A UUIDv7 field, validated and normalised to lower case.
Uuid7 = Annotated[str, AfterValidator(parse_uuid7)]
#: The id of a run (ULID).
RunId = Annotated[str, AfterValidator(parse_ulid)]
#: The id of a ledger event (ULID).
EventId = Annotated[str, AfterValidator(parse_ulid)]
#: The id of a catalog entity: namespace, table, column, asset (UUIDv7).
EntityId = Annotated[str, AfterValidator(parse_uuid7)]
