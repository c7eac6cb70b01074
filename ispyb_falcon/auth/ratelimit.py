"""Login rate limit: slow down password guessing, the same for the whole site.

Three counts of failed logins over a sliding window (`login_window_seconds`):

- per login, from every address (`login_max_failures`): stops guessing one
  account, even from many addresses;
- per address, over every login (`address_max_failures`): stops spraying a
  common password across many accounts from one client;
- per login at one address (`login_max_failures`).

A refused attempt answers 429 and is not tried. So that a guesser cannot lock
a person out (OWASP's "lockout as denial of service"), a login is *known* at an
address where it logged in successfully within `known_address_days`, and there
only the third count applies: admin1 at their usual address is refused only
after admin1's own failures from that address, whatever others try elsewhere or
from the same address. At an address where admin1 is not known, the per-login
and per-address counts apply, and a sprayer can delay admin1 there for one
window at most; nothing anyone does elsewhere affects that address.

The counts live in a store every worker and host of a site shares (the database
or Redis; `[auth] limiter`), or in this process (`memory`: right for one waitress
process). An attempt is counted as failed when it starts, in the same atomic
step as the check (forty simultaneous guesses cannot all pass the check before
the first is counted), and taken back when the password proves right: then the
failures of that login at that address are forgiven in every count, and the
login becomes known there. An IPv6 client counts as its /64 network, which one
host can change addresses within at will.

Keys are SHA-256 digests of the login (case-folded: LDAP logins are caseless)
and of the address: fixed-width, free of any collation, and no list of logins
in the store, although a digest of a guessable login is no secret.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .proxies import TrustedProxies

log = logging.getLogger("ispyb_falcon.auth")


class TooManyFailures(Exception):
    """This login may not be tried from this address now; `seconds` until it may."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds


class LimiterUnavailable(Exception):
    """The store of the counts cannot be reached: no login is tried (503) until it can."""


@dataclass(frozen=True)
class Counter:
    """One count an attempt is checked against and added to.

    `always` False: not checked where the login is known (it is still added to).
    """

    key: str
    limit: int
    always: bool


@dataclass(frozen=True)
class Keys:
    known: str
    pair: str
    login: str
    address: str


@dataclass(frozen=True)
class Attempt:
    """One login attempt, counted as failed until `succeeded` or `withdraw` says otherwise."""

    login: str
    address: str
    at: int  # milliseconds since the epoch
    keys: Keys


def digest(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\0{value}".encode("utf-8", "surrogatepass")).hexdigest()


def address_key(address: str) -> str:
    """The address a count is kept for: an IPv6 address's /64 network, else the address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


# --- the rules, on lists of failure times (the memory and database stores share them) -------


def live(times: Sequence[int], now: int, window: int) -> list[int]:
    """The failures still inside the window, oldest first."""
    horizon = now - window
    return sorted(t for t in times if t > horizon)


def decide(
    lists: dict[str, list[int]], known: bool, counters: Sequence[Counter], now: int, window: int
) -> int | None:
    """Milliseconds to wait, or None after adding `now` to every count (`lists` is updated)."""
    waits = []
    for c in counters:
        times = lists[c.key] = live(lists.get(c.key, ()), now, window)
        if (c.always or not known) and len(times) >= c.limit:
            # Refused until the oldest of the last `limit` failures leaves the window.
            waits.append(times[-c.limit] + window - now)
    if waits:
        return max(1, max(waits))
    for c in counters:
        # Not cut to `limit`: a known login may add to a count past it, and forgiving its
        # failures must then take out its own, not one of a sprayer's that a cut dropped.
        # The length stays bounded: past the limit only known logins add, N each at most.
        lists[c.key].append(now)
    return None


def remove_once(times: list[int], at: int) -> None:
    if at in times:
        times.remove(at)


def encode(times: Sequence[int]) -> str:
    return " ".join(map(str, times))


def decode(text: str | None) -> list[int]:
    return [int(t) for t in (text or "").split() if t.isdigit()]  # a mangled row counts less


class Store(ABC):
    """Where the counts live. Each method is one atomic step for every worker sharing it;
    each raises `LimiterUnavailable` when the store cannot be reached."""

    @abstractmethod
    def attempt(self, known: str, counters: Sequence[Counter], now: int, window: int) -> int | None:
        """Milliseconds to wait, or None after counting the attempt in every counter."""

    @abstractmethod
    def forget(self, keys: Sequence[str], at: int, now: int, window: int) -> None:
        """Take one failure at `at` out of each count."""

    @abstractmethod
    def succeed(
        self,
        pair: str,
        others: Sequence[str],
        known: str,
        known_until: int | None,
        now: int,
        window: int,
    ) -> None:
        """Forgive the pair's failures in its own and the `others` counts; mark it known."""

    def check(self) -> None:  # noqa: B027 - a store with nothing to check keeps this
        """At start-up: `ValueError` if the store is not set up (a missing table),
        `LimiterUnavailable` if it cannot be reached now."""


class MemoryStore(Store):
    """The counts of this process: thread-safe, bounded (`max_entries` counts and as many
    known pairs; the least recently changed go first)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._lock = threading.Lock()
        # Ordered by last change, oldest first: pruning stops at the first live entry.
        self._lists: OrderedDict[str, tuple[list[int], int]] = OrderedDict()  # times, expires
        self._known: OrderedDict[str, int] = OrderedDict()  # expires

    def __len__(self) -> int:
        with self._lock:
            return len(self._lists) + len(self._known)

    def attempt(self, known, counters, now, window):
        with self._lock:
            self._prune(now)
            lists = {c.key: self._lists.get(c.key, ([], 0))[0] for c in counters}
            is_known = self._known.get(known, 0) > now
            wait = decide(lists, is_known, counters, now, window)
            if wait is None:
                self._store(lists, window)
            return wait

    def forget(self, keys, at, now, window):
        with self._lock:
            lists = {k: list(self._lists[k][0]) for k in keys if k in self._lists}
            for times in lists.values():
                remove_once(times, at)
            self._store(lists, window)

    def succeed(self, pair, others, known, known_until, now, window):
        with self._lock:
            forgiven = self._lists.pop(pair, ([], 0))[0]
            lists = {k: list(self._lists[k][0]) for k in others if k in self._lists}
            for times in lists.values():
                for at in forgiven:
                    remove_once(times, at)
            self._store(lists, window)
            if known_until is not None:
                self._known.pop(known, None)
                self._known[known] = known_until
                while len(self._known) > self.max_entries:
                    self._known.popitem(last=False)

    def _store(self, lists: dict[str, list[int]], window: int) -> None:
        for key, times in lists.items():
            self._lists.pop(key, None)
            if times:
                self._lists[key] = (times, max(times) + window)  # re-inserted: the newest
        while len(self._lists) > self.max_entries:
            self._lists.popitem(last=False)

    def _prune(self, now: int) -> None:
        for table in (self._lists, self._known):
            while table:
                value = next(iter(table.values()))
                expires = value[1] if isinstance(value, tuple) else value
                if expires > now:
                    break
                table.popitem(last=False)


class LoginLimiter:
    """Answers "may this login be tried from this address now?" and keeps the counts."""

    def __init__(
        self,
        max_failures: int = 5,
        window_seconds: int = 300,
        clock: Callable[[], float] = time.time,
        *,
        max_address_failures: int | None = None,
        known_days: float = 30,
        store: Store | None = None,
        proxies: TrustedProxies | None = None,
        max_entries: int = 10_000,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if max_address_failures is not None and max_address_failures < 1:
            raise ValueError("max_address_failures must be at least 1")
        if known_days < 0:
            raise ValueError("known_days must not be negative")
        self.max_failures = max_failures
        self.max_address_failures = max_address_failures or 4 * max_failures
        self.window_seconds = window_seconds
        self.known_ms = round(known_days * 86_400_000)
        self.store = store if store is not None else MemoryStore(max_entries)
        self.proxies = proxies or TrustedProxies()
        # Wall-clock time: every worker and host must agree (as they must for token expiry).
        self._clock = clock

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The address an attempt counts against (see `TrustedProxies.client`)."""
        return self.proxies.client(peer, forwarded_for)

    def _now(self) -> int:
        return round(self._clock() * 1000)

    @property
    def _window(self) -> int:
        return self.window_seconds * 1000

    @staticmethod
    def keys(login: str, address: str) -> Keys:
        who = login.casefold()
        where = address_key(address)
        pair = f"{who}\0{where}"
        return Keys(
            known=digest("known", pair),
            pair=digest("pair", pair),
            login=digest("login", who),
            address=digest("address", where),
        )

    def attempt(self, login: str, address: str) -> Attempt:
        """Check and count an attempt in one step (raises `TooManyFailures`, counting nothing,
        or `LimiterUnavailable`).

        The attempt counts as a failure from now on: settle it with `succeeded`
        (the password was right) or `withdraw` (no answer about it, e.g. an outage).
        """
        keys = self.keys(login, address)
        now = self._now()
        counters = (
            Counter(keys.pair, self.max_failures, True),
            Counter(keys.login, self.max_failures, False),
            Counter(keys.address, self.max_address_failures, False),
        )
        wait = self.store.attempt(keys.known, counters, now, self._window)
        if wait is not None:
            raise TooManyFailures(max(1, math.ceil(wait / 1000)))
        return Attempt(login, address, now, keys)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: forgive this login's failures at this address (in the
        per-login and per-address counts too) and remember the login is known here.
        The address's other failures stay, or one good account would let a sprayer reset
        them."""
        k = attempt.keys
        now = self._now()
        until = now + self.known_ms if self.known_ms else None
        try:
            self.store.succeed(k.pair, (k.login, k.address), k.known, until, now, self._window)
        except LimiterUnavailable as exc:  # the login stands; its attempt stays counted
            log.warning("login limit store unavailable, success not recorded: %s", exc)

    def withdraw(self, attempt: Attempt) -> None:
        """Take back an attempt that got no answer about the password."""
        k = attempt.keys
        try:
            self.store.forget((k.pair, k.login, k.address), attempt.at, self._now(), self._window)
        except LimiterUnavailable as exc:  # it stays counted as a failure: the safe side
            log.warning("login limit store unavailable, attempt not taken back: %s", exc)


def make_limiter(settings, engine=None) -> LoginLimiter:
    """The site's limiter from `[auth]` and `[server] trusted_proxies`.

    `engine` is the ISPyB database's, used by `limiter = database` when
    `limiter_url` is empty.
    """
    from ..config import ConfigError

    kind = settings[("auth", "limiter")]
    if kind == "memory":
        log.info(
            "failed logins are counted in this process only ([auth] limiter = memory); "
            "with several workers or hosts use database or redis"
        )
        store: Store = MemoryStore()
    else:
        from .limitstores import make_store

        try:
            store = make_store(settings, engine)
            store.check()
        except ValueError as exc:  # a missing table, a bad URL: say so now
            raise ConfigError(f"[auth] limiter = {kind}: {exc}") from None
        except LimiterUnavailable as exc:  # an outage, which may end: logins 503 until it does
            log.warning("login limit store unavailable at start-up (logins answer 503): %s", exc)
    return LoginLimiter(
        settings[("auth", "login_max_failures")],
        settings[("auth", "login_window_seconds")],
        max_address_failures=settings[("auth", "address_max_failures")],
        known_days=settings[("auth", "known_address_days")],
        store=store,
        proxies=TrustedProxies(settings[("server", "trusted_proxies")]),
    )
