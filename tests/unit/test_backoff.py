"""How long callers wait before a retry: Retry-After parsing and jittered exponential backoff."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchcore.backoff import (
    POLL_DELAY_CEILING_SECONDS,
    RETRY_AFTER_ABSURD_SECONDS,
    RETRY_AFTER_CEILING_SECONDS,
    backoff_delay,
    next_poll_delay,
    parse_retry_after,
)

# --------------------------------------------------------------------------- Retry-After parsing

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
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


# --------------------------------------------------------------------------- hostile Retry-After
# Issue 12: a Retry-After of 1e9 parked a run until 2058, one in year 9999 until 9999, and 1e12
# raised OverflowError in the poller. Every value handed out is finite, >= 0 and capped.


@pytest.mark.parametrize(
    "value",
    [
        "1e12",
        "1e9",
        "1e400",
        "-5",
        "-0.5",
        "86401",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Mon, 01 Jan 2100 00:00:00 GMT",
    ],
)
def test_absurd_or_negative_retry_after_is_absent(value):
    assert parse_retry_after(value, now=NOW) is None


def test_a_long_but_sane_retry_after_is_capped_at_the_ceiling():
    assert parse_retry_after("3600", now=NOW) == RETRY_AFTER_CEILING_SECONDS
    assert parse_retry_after("Wed, 01 May 2024 14:00:00 GMT", now=NOW) == (
        RETRY_AFTER_CEILING_SECONDS
    )
    assert parse_retry_after(str(RETRY_AFTER_ABSURD_SECONDS), now=NOW) == (
        RETRY_AFTER_CEILING_SECONDS
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.floats().map(repr), st.integers().map(str)))
def test_parse_retry_after_hands_out_only_finite_capped_values(value):
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or 0.0 <= seconds <= RETRY_AFTER_CEILING_SECONDS


@settings(max_examples=300)
@given(st.datetimes(timezones=st.just(UTC)))
def test_parse_retry_after_of_any_http_date_is_finite_and_capped(when):
    seconds = parse_retry_after(format_datetime(when, usegmt=True), now=NOW)
    assert seconds is None or 0.0 <= seconds <= RETRY_AFTER_CEILING_SECONDS


@settings(max_examples=300)
@given(
    st.integers(min_value=0, max_value=10**6),
    st.floats(),
    st.one_of(st.none(), st.floats()),
)
def test_backoff_delay_is_finite_and_bounded_for_any_retry_after(attempt, base, retry_after):
    base = abs(base) if math.isfinite(base) else 1.0
    delay = backoff_delay(attempt, base, 30.0, retry_after, random.Random(attempt))
    assert math.isfinite(delay)
    assert 0.0 <= delay <= max(30.0, RETRY_AFTER_CEILING_SECONDS)


# --------------------------------------------------------------------------- next_poll_delay


def test_next_poll_delay_takes_the_longer_of_backoff_and_retry_after():
    assert next_poll_delay(10.0, None) == 10.0
    assert next_poll_delay(10.0, 45.0) == 45.0
    assert next_poll_delay(60.0, 5.0) == 60.0


@pytest.mark.parametrize(
    ("backoff", "retry_after"),
    [(10.0, 3600.0), (10.0, 86400.0), (1e12, None), (float("inf"), 1.0), (1e12, 1e12)],
)
def test_next_poll_delay_is_capped(backoff, retry_after):
    delay = next_poll_delay(backoff, retry_after)
    assert delay == POLL_DELAY_CEILING_SECONDS
    # The poller adds it to now: that must never overflow.
    assert datetime.now(UTC) + timedelta(seconds=delay)


@pytest.mark.parametrize(
    "retry_after", [-1.0, float("nan"), float("-inf"), float("inf"), 1e9, 1e12, None]
)
def test_next_poll_delay_ignores_unusable_retry_after(retry_after):
    assert next_poll_delay(12.0, retry_after) == 12.0


def test_next_poll_delay_of_an_unusable_backoff_is_safe():
    assert next_poll_delay(-3.0, None) == 0.0
    assert next_poll_delay(float("nan"), None) == POLL_DELAY_CEILING_SECONDS


@settings(max_examples=500)
@given(st.floats(), st.one_of(st.none(), st.floats()))
def test_next_poll_delay_is_always_finite_non_negative_and_capped(backoff, retry_after):
    delay = next_poll_delay(backoff, retry_after)
    assert math.isfinite(delay)
    assert 0.0 <= delay <= POLL_DELAY_CEILING_SECONDS
    datetime.now(UTC) + timedelta(seconds=delay)
