"""Login rate limit: slow down password guessing without a database.

Two counters, both over a sliding window: one per (login, address) pair, which
stops guessing one account, and one per address over all logins, which stops
spraying a common password across many accounts. Kept in memory per process:
good enough to turn millions of guesses into a handful, and bounded so that an
attacker cannot exhaust memory by inventing logins.

An attempt is counted as a failure when it starts (`attempt`), in the same
step as the check, and taken back when it succeeds: checking first and
counting after the password was verified let forty simultaneous guesses pass
the check before the first was counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from .proxies import TrustedProxies

MAX_LOGIN_KEY = 256  # longer logins share a key; they cannot be real anyway


class TooManyFailures(Exception):
    """This login may not be tried from this address now; `seconds` until it may."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Attempt:
    """One login attempt, counted as failed until `succeeded` or `withdraw` says otherwise."""

    login: str
    address: str
    at: float


class LoginLimiter:
    """Thread-safe failure counter answering "may this login be tried now?"."""

    def __init__(
        self,
        max_failures: int = 5,
        window_seconds: int = 300,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_entries: int = 10_000,
        proxies: TrustedProxies | None = None,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_failures = max_failures
        self.max_address_failures = 4 * max_failures
        self.window_seconds = window_seconds
        self.max_entries = max_entries
        self.proxies = proxies or TrustedProxies()
        self._clock = clock
        self._lock = threading.Lock()
        # Each value keeps only the most recent failures that can matter (deque maxlen);
        # the OrderedDict is ordered by last failure, oldest first, for pruning and eviction.
        self._pairs: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._addresses: OrderedDict[str, deque[float]] = OrderedDict()

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The address an attempt counts against (see `TrustedProxies.client`)."""
        return self.proxies.client(peer, forwarded_for)

    @staticmethod
    def _login_key(login: str) -> str:
        # Case-folded so that "Alice" and "alice" share a counter (LDAP logins are caseless).
        return login.casefold()[:MAX_LOGIN_KEY]

    def retry_after(self, login: str, address: str) -> int | None:
        """Seconds to wait before this login may be tried from this address, or None."""
        now = self._clock()
        with self._lock:
            return self._retry_after(login, address, now)

    def _retry_after(self, login: str, address: str, now: float) -> int | None:
        waits = [
            self._wait(self._pairs.get((self._login_key(login), address)), self.max_failures, now),
            self._wait(self._addresses.get(address), self.max_address_failures, now),
        ]
        blocked = [w for w in waits if w is not None]
        return max(blocked) if blocked else None

    def attempt(self, login: str, address: str) -> Attempt:
        """Check and count an attempt in one step (raises `TooManyFailures`, counting nothing).

        The attempt counts as a failure from now on: settle it with `succeeded`
        (the password was right) or `withdraw` (no answer about it, e.g. an outage).
        """
        now = self._clock()
        with self._lock:
            wait = self._retry_after(login, address, now)
            if wait is not None:
                raise TooManyFailures(wait)
            self._failed(login, address, now)
        return Attempt(login, address, now)

    def failed(self, login: str, address: str) -> None:
        """Record a failed login attempt."""
        now = self._clock()
        with self._lock:
            self._failed(login, address, now)

    def _failed(self, login: str, address: str, now: float) -> None:
        self._record(self._pairs, (self._login_key(login), address), self.max_failures, now)
        self._record(self._addresses, address, self.max_address_failures, now)

    def succeeded(self, attempt: Attempt) -> None:
        """Forget the pair's failures, and this attempt on the address; the address's other
        failures stay, or one good account would let a sprayer reset them."""
        with self._lock:
            self._pairs.pop((self._login_key(attempt.login), attempt.address), None)
            self._forget(self._addresses, attempt.address, attempt.at)

    def withdraw(self, attempt: Attempt) -> None:
        """Take back an attempt that got no answer about the password."""
        with self._lock:
            self._forget(self._pairs, (self._login_key(attempt.login), attempt.address), attempt.at)
            self._forget(self._addresses, attempt.address, attempt.at)

    def __len__(self) -> int:
        """Entries held (pairs plus addresses), for tests and monitoring."""
        with self._lock:
            return len(self._pairs) + len(self._addresses)

    def _wait(self, times: deque[float] | None, limit: int, now: float) -> int | None:
        if not times or len(times) < limit:
            return None
        # Blocked until the oldest of the last `limit` failures leaves the window.
        remaining = times[0] + self.window_seconds - now
        if remaining <= 0:
            return None
        return max(1, math.ceil(remaining))

    def _record(self, table: OrderedDict, key: object, limit: int, now: float) -> None:
        self._prune(table, now)  # amortized O(1): stops at the first live entry
        times = table.pop(key, None)
        if times is None:
            while len(table) >= self.max_entries:
                table.popitem(last=False)  # evict the entry whose last failure is oldest
            times = deque(maxlen=limit)
        times.append(now)
        table[key] = times  # re-inserted: now the most recent

    @staticmethod
    def _forget(table: OrderedDict, key: object, at: float) -> None:
        """Remove one failure recorded at `at` (gone already if it left the window)."""
        times = table.get(key)
        if times is None or at not in times:
            return
        times.remove(at)
        if not times:
            del table[key]

    def _prune(self, table: OrderedDict, now: float) -> None:
        """Drop entries whose last failure is outside the window (they block nothing)."""
        horizon = now - self.window_seconds
        while table:
            key, times = next(iter(table.items()))
            if times[-1] > horizon:
                break  # ordered by last failure: everything after is more recent
            del table[key]
