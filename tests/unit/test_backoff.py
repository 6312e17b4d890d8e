"""How long callers wait before a retry: Retry-After parsing and jittered exponential backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from batchcore.backoff import RETRY_AFTER_CEILING_SECONDS, backoff_delay, parse_retry_after

# --------------------------------------------------------------------------- Retry-After parsing

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("Wed, 01 May 2024 12:02:00 GMT", 120.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),
        ("Wed, 01 May 2024 12:00:30 -0000", 30.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 99 Foo 2024", None),
    ],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


# --------------------------------------------------------------------------- backoff_delay


def test_backoff_delay_stays_within_full_jitter_bounds():
    base, cap = 0.5, 30.0
    for seed in range(3000):
        rng = random.Random(seed)
        attempt = seed % 15
        delay = backoff_delay(attempt, base, cap, None, rng)
        assert 0.0 <= delay <= min(cap, base * 2**attempt)


def test_backoff_delay_never_undercuts_retry_after():
    base, cap = 1.0, 20.0
    for seed in range(3000):
        rng = random.Random(seed)
        retry_after = rng.uniform(0, 500)
        attempt = rng.randrange(0, 12)
        delay = backoff_delay(attempt, base, cap, retry_after, rng)
        floor = min(retry_after, RETRY_AFTER_CEILING_SECONDS)
        assert delay >= floor
        assert 0.0 <= delay <= max(min(cap, base * 2**attempt), floor)
        assert delay <= RETRY_AFTER_CEILING_SECONDS


def test_backoff_delay_honours_retry_after_above_cap_up_to_the_ceiling():
    rng = random.Random(1)
    assert backoff_delay(0, 1.0, 10.0, 45.0, rng) == 45.0
    assert backoff_delay(0, 1.0, 10.0, 10_000.0, rng) == RETRY_AFTER_CEILING_SECONDS
    assert 0.0 <= backoff_delay(0, 1.0, 10.0, -3.0, rng) <= 1.0
    assert 0.0 <= backoff_delay(0, 1.0, 10.0, float("nan"), rng) <= 1.0


def test_backoff_delay_is_jittered_and_reproducible():
    delays = [backoff_delay(5, 1.0, 60.0, None, random.Random(seed)) for seed in range(200)]
    assert len(set(delays)) > 150
    assert min(delays) < 8.0 < max(delays)
    assert backoff_delay(5, 1.0, 60.0, None, random.Random(7)) == delays[7]


def test_backoff_delay_handles_huge_attempts_and_default_rng():
    assert 0.0 <= backoff_delay(10_000, 1.0, 30.0, None) <= 30.0
    assert backoff_delay(3, 0.0, 30.0, None) == 0.0
    assert backoff_delay(3, 1.0, 0.0, 2.0) == 2.0


@pytest.mark.parametrize(
    "args", [(-1, 1.0, 10.0), (0, -1.0, 10.0), (0, 1.0, -1.0), (0, float("inf"), 10.0)]
)
def test_backoff_delay_refuses_bad_arguments(args):
    with pytest.raises(ValueError):
        backoff_delay(*args, None)
