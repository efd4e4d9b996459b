"""Exponential backoff with jitter for transient broker failures.

Only :class:`TransientError` is retried: a broker adapter translates 5xx replies, 429 (with its
Retry-After), timeouts and dropped connections into it, and 4xx rejects into
:class:`brokers.base.OrderRejected`, which passes straight through. Each wait is drawn between half and
all of the exponential backoff ("equal jitter"), so many clients failing together do not retry in step.
A call gives up after ``max_attempts`` with :class:`brokers.base.BrokerUnavailable`; the broker loop
(:func:`experiments.paper.run_broker`) then treats it as an outage and keeps retrying, without a time
limit, at the same backoff capped at ``max_delay``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from brokers.base import BrokerError, BrokerUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class TransientError(BrokerError):
    """A failure worth retrying.

    :param message: what failed.
    :param retry_after: seconds the server asked us to wait (HTTP Retry-After), if it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff.

    :param max_attempts: total tries including the first.
    :param base_delay: seconds before the first retry; doubles every retry.
    :param max_delay: cap on one wait (a longer Retry-After is still honoured up to this cap).
    :param jitter: fraction of each backoff drawn at random (0: exact backoff).
    :param seed: seed of the jitter's generator (a run's waits are reproducible).
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")
        object.__setattr__(self, "_rng", random.Random(self.seed))

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based).

        :param retry: how many retries happened before this one.
        :param retry_after: the server's Retry-After, which wins when it is longer than the backoff.
        """
        backoff = min(self.base_delay * 2.0 ** min(retry, 60), self.max_delay)
        backoff *= 1.0 - self.jitter * self._rng.random()  # type: ignore[attr-defined]
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return min(backoff, self.max_delay)


def is_refused(err: BaseException) -> bool:
    """True when a connection could not even be opened (refused, unknown host): at the first contact that
    is a wrong URL, not an outage.

    :param err: a ``requests`` exception.
    """
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    inner = err.args[0] if err.args else None
    if isinstance(inner, MaxRetryError):
        inner = inner.reason
    return isinstance(inner, NewConnectionError)  # unknown hosts too (NameResolutionError is one)


def call_with_retry(
    fn: Callable[[int], T],
    policy: RetryPolicy,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn(attempt)`` until it returns, retrying :class:`TransientError` with backoff.

    ``fn`` receives the attempt number so a caller can act differently on a retry (an order submission
    looks the order up first, because an earlier attempt may have reached the broker).

    :param fn: the call; raises :class:`TransientError` for retryable failures.
    :param policy: how often and how long to wait.
    :param what: a description for log lines and the final error.
    :param sleep: the wait function (tests pass a recorder).
    :raises BrokerUnavailable: when the last attempt fails transiently.
    """
    attempt = 0
    while True:
        try:
            return fn(attempt)
        except TransientError as err:
            if attempt + 1 >= policy.max_attempts:
                raise BrokerUnavailable(
                    f"{what}: gave up after {policy.max_attempts} attempts: {err}"
                ) from err
            wait = policy.delay(attempt, err.retry_after)
            log.warning("%s failed (%s); retry %d in %.2fs", what, err, attempt + 1, wait)
            sleep(wait)
            attempt += 1
