"""Identifiers: ULID generation (monotonic, thread-safe, overflow), parsing, UUIDv7, pydantic field types."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from arco.core.errors import InvalidIdError
from arco.core.ids import (
    MAX_ULID_TIMESTAMP_MS,
    EntityId,
    EventId,
    RunId,
    UlidGenerator,
    new_ulid,
    new_uuid7,
    parse_ulid,
    parse_uuid7,
    ulid_timestamp_ms,
)

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _decode(text: str) -> int:
    """Independent Crockford base32 decoder for the tests."""
    value = 0
    for ch in text:
        value = value * 32 + CROCKFORD.index(ch)
    return value


class FakeClock:
    """A millisecond clock the test moves by hand; ``sleep`` advances it by ``step_on_sleep`` ms."""

    def __init__(self, now: int, step_on_sleep: int = 1) -> None:
        self.now = now
        self.step_on_sleep = step_on_sleep
        self.sleeps = 0

    def __call__(self) -> int:
        return self.now

    def sleep(self, _seconds: float) -> None:
        self.sleeps += 1
        self.now += self.step_on_sleep


def _fixed_random(value: int) -> Callable[[int], bytes]:
    def randomness(n: int) -> bytes:
        return value.to_bytes(n, "big")

    return randomness


def _generator(clock: FakeClock, random_value: int, **kwargs: float) -> UlidGenerator:
    return UlidGenerator(clock=clock, randomness=_fixed_random(random_value), sleep=clock.sleep, **kwargs)


# --- ULID generation ---


def test_new_ulid_shape() -> None:
    value = new_ulid()
    assert len(value) == 26
    assert set(value) <= set(CROCKFORD)
    assert parse_ulid(value) == value


def test_ulid_layout_is_timestamp_then_randomness() -> None:
    clock = FakeClock(1_700_000_000_123)
    value = _generator(clock, 0xABCDEF).new()
    assert _decode(value) == (1_700_000_000_123 << 80) | 0xABCDEF
    assert ulid_timestamp_ms(value) == 1_700_000_000_123


def test_same_millisecond_increments_the_randomness() -> None:
    clock = FakeClock(5_000)
    generator = _generator(clock, 41)
    values = [generator.new() for _ in range(3)]
    assert [_decode(v) & (2**80 - 1) for v in values] == [41, 42, 43]
    assert values == sorted(values)
    clock.now += 1
    fresh = generator.new()
    assert ulid_timestamp_ms(fresh) == 5_001
    assert _decode(fresh) & (2**80 - 1) == 41


def test_clock_stepping_back_keeps_order() -> None:
    clock = FakeClock(10_000)
    generator = _generator(clock, 7)
    first = generator.new()
    clock.now = 9_000
    second = generator.new()
    assert second > first
    assert ulid_timestamp_ms(second) == 10_000


def test_overflow_waits_for_the_next_millisecond() -> None:
    clock = FakeClock(20_000)
    generator = _generator(clock, 2**80 - 2)
    a = generator.new()
    b = generator.new()  # randomness is now all ones
    c = generator.new()  # overflow: must wait for 20_001
    assert clock.sleeps == 1
    assert ulid_timestamp_ms(a) == ulid_timestamp_ms(b) == 20_000
    assert ulid_timestamp_ms(c) == 20_001
    assert a < b < c


def test_overflow_with_a_stuck_clock_is_bounded_and_still_monotonic() -> None:
    clock = FakeClock(30_000, step_on_sleep=0)
    generator = _generator(clock, 2**80 - 1, max_overflow_wait_s=0.01)
    a = generator.new()
    b = generator.new()
    assert 1 <= clock.sleeps <= 20
    assert ulid_timestamp_ms(b) == 30_001
    assert a < b


def test_clock_out_of_range_is_an_error() -> None:
    with pytest.raises(InvalidIdError, match="clock"):
        _generator(FakeClock(-1), 0).new()
    with pytest.raises(InvalidIdError, match="clock"):
        _generator(FakeClock(MAX_ULID_TIMESTAMP_MS + 1), 0).new()
    assert ulid_timestamp_ms(_generator(FakeClock(MAX_ULID_TIMESTAMP_MS), 0).new()) == MAX_ULID_TIMESTAMP_MS


def test_new_ulid_is_strictly_increasing_in_a_tight_loop() -> None:
    values = [new_ulid() for _ in range(20_000)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)


def test_new_ulid_is_thread_safe() -> None:
    per_thread: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def work(out: list[str]) -> None:
        start.wait(timeout=10)
        for _ in range(3_000):
            out.append(new_ulid())

    threads = [threading.Thread(target=work, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    everything = [value for out in per_thread for value in out]
    assert len(set(everything)) == len(everything) == 12_000
    for out in per_thread:
        assert out == sorted(out)


# --- ULID parsing ---


def test_parse_normalises_case() -> None:
    assert parse_ulid("01arz3ndektsv4rrffq69g5fav") == "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def test_timestamp_of_a_known_ulid() -> None:
    # '01ARZ3NDEK' decoded by hand: the first 10 characters are the 48-bit timestamp.
    assert ulid_timestamp_ms("01ARZ3NDEKTSV4RRFFQ69G5FAV") == _decode("01ARZ3NDEK") == 1_469_922_850_259


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "0 characters"),
        ("01ARZ3NDEKTSV4RRFFQ69G5FA", "25 characters"),
        ("01ARZ3NDEKTSV4RRFFQ69G5FAVX", "27 characters"),
        ("01ARZ3NDEKTSV4RRFFQ69G5FAI", "I, L, O and U"),
        ("01ARZ3NDEKTSV4RRFFQ69G5FAL", "I, L, O and U"),
        ("01ARZ3NDEKTSV4RRFFQ69G5FAO", "I, L, O and U"),
        ("01ARZ3NDEKTSV4RRFFQ69G5FAU", "Crockford"),
        ("81ARZ3NDEKTSV4RRFFQ69G5FAV", "first character must be 0-7"),
        ("01ARZ3NDEKTSV4RRFFQ69G5FA-", "Crockford"),
        (" 1ARZ3NDEKTSV4RRFFQ69G5FAV", "Crockford"),
        ("01ARZ3NDEKTSV4RRFFQ69G5FA\u212a", "Crockford"),  # Kelvin sign: case-folds to 'k' under IGNORECASE
        ("01ARZ3NDEKTSV4RRFFQ69G5FA\u017f", "Crockford"),  # long s: case-folds to 's'
    ],
)
def test_parse_rejects_non_ulids(text: str, hint: str) -> None:
    with pytest.raises(InvalidIdError, match="not a ULID") as info:
        parse_ulid(text)
    assert hint in str(info.value)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(InvalidIdError, match="must be a string"):
        parse_ulid(123)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_every_128_bit_value_round_trips(value: int) -> None:
    text = "".join(CROCKFORD[(value >> (5 * (25 - i))) & 31] for i in range(26))
    assert parse_ulid(text.lower()) == text
    assert ulid_timestamp_ms(text) == value >> 80


# --- UUIDv7 ---


def test_new_uuid7_is_version_7_lowercase_and_increasing() -> None:
    values = [new_uuid7() for _ in range(2_000)]
    for value in values[:10]:
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert value == value.lower() == str(parsed)
        assert parse_uuid7(value) == value
    assert values == sorted(values)
    assert len(set(values)) == len(values)


def test_parse_uuid7_normalises_case() -> None:
    assert parse_uuid7("0190A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B") == "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (str(uuid.UUID(int=0x0190A1B2C3D44E5F8A6B7C8D9E0F1A2B)), "version-4"),
        ("0190a1b2-c3d4-7e5f-ca6b-7c8d9e0f1a2b", "variant"),
        ("0190a1b2c3d47e5f8a6b7c8d9e0f1a2b", "not a UUID"),
        ("{0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b}", "not a UUID"),
        ("urn:uuid:0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", "not a UUID"),
        ("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2", "not a UUID"),
        ("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2g", "not a UUID"),
        ("", "not a UUID"),
    ],
)
def test_parse_uuid7_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidIdError, match=message):
        parse_uuid7(text)


def test_parse_uuid7_rejects_non_strings() -> None:
    with pytest.raises(InvalidIdError, match="must be a string"):
        parse_uuid7(uuid.uuid4())  # type: ignore[arg-type]


# --- pydantic field types ---


class _Model(BaseModel):
    run_id: RunId
    event_id: EventId | None = None
    entity_id: EntityId | None = None


def test_pydantic_id_fields_validate_and_normalise() -> None:
    model = _Model.model_validate(
        {
            "run_id": "01arz3ndektsv4rrffq69g5fav",
            "entity_id": "0190A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B",
        }
    )
    assert model.run_id == "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert model.entity_id == "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
    with pytest.raises(ValidationError, match="not a ULID"):
        _Model.model_validate({"run_id": "run-123"})
    with pytest.raises(ValidationError, match="version-4"):
        _Model.model_validate({"run_id": new_ulid(), "entity_id": str(uuid.uuid4())})
    with pytest.raises(ValidationError):
        _Model.model_validate({"run_id": 5})


def test_uuid7_bursts_stay_ordered_without_running_ahead_of_the_clock() -> None:
    import time
    import uuid

    from arco.core.ids import new_uuid7

    ids = [new_uuid7() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    newest_ms = uuid.UUID(ids[-1]).int >> 80
    # A counter in the 12 bits after the version keeps order; the timestamp never drifts ahead by the burst size.
    assert newest_ms <= time.time_ns() // 1_000_000 + 2
