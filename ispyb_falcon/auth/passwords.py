"""The `file` authenticator: logins, roles and PBKDF2 hashes in a text file.

For sites (and beamline hosts) without LDAP. One line per login:

    login:role1,role2:pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>

`#` comments and blank lines are ignored. The file is re-read when it changes,
so `ispyb-falcon passwd` takes effect without a restart.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .authenticators import ROLES, Authenticator, Identity

log = logging.getLogger(__name__)

SCHEME = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 310_000  # OWASP 2023 figure for PBKDF2-HMAC-SHA256
MIN_ITERATIONS = 200_000
# A file with an absurd count would turn every login into a denial of service.
MAX_ITERATIONS = 10_000_000
SALT_BYTES = 16


def hash_password(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    """Encode `password` as `pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>`."""
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}")
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join(
        (
            SCHEME,
            str(iterations),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


def _parse_hash(encoded: str) -> tuple[int, bytes, bytes] | None:
    """(iterations, salt, digest), or None if `encoded` is not a hash we accept."""
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != SCHEME or not parts[1].isdigit():
        return None
    iterations = int(parts[1])
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        return None
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return None
    if not salt or len(digest) != hashlib.sha256().digest_size:
        return None
    return iterations, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches `encoded`; False for a mismatch or a malformed hash."""
    parsed = _parse_hash(encoded)
    if parsed is None:
        return False
    iterations, salt, expected = parsed
    actual = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return hmac.compare_digest(actual, expected)


def _check_login(login: str) -> None:
    if not login or login != login.strip():
        raise ValueError("login must be non-empty, without leading or trailing spaces")
    if ":" in login:
        raise ValueError("login must not contain ':'")
    if login.startswith("#"):
        raise ValueError("login must not start with '#'")
    if any(ch.isspace() or not ch.isprintable() for ch in login):
        raise ValueError("login must not contain spaces or control characters")


def _check_roles(roles: Sequence[str]) -> None:
    if isinstance(roles, str):
        raise ValueError("roles must be a sequence of role names, not a string")
    if not roles:
        raise ValueError("at least one role is required")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(
            f"unknown role(s) {', '.join(map(repr, unknown))}; known: {', '.join(ROLES)}"
        )


def set_password(path: Path, login: str, password: str, roles: Sequence[str]) -> None:
    """Add or replace `login`'s line; the file is rewritten atomically with mode 0600.

    Comments and other lines are kept as they are. A concurrent reader sees the
    old file or the new one, never half of one.
    """
    _check_login(login)
    _check_roles(roles)
    if not password:
        raise ValueError("password must not be empty")
    path = Path(path)
    line = f"{login}:{','.join(dict.fromkeys(roles))}:{hash_password(password)}"
    try:
        old_lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        old_lines = []
    new_lines: list[str] = []
    replaced = False
    for old in old_lines:
        if old.split(":", 1)[0].strip() == login and not old.lstrip().startswith("#"):
            if not replaced:
                new_lines.append(line)
                replaced = True
            continue  # drop duplicates of the same login
        new_lines.append(old)
    if not replaced:
        new_lines.append(line)
    text = "\n".join(new_lines) + "\n"

    directory = path.parent if str(path.parent) else Path(".")
    # mkstemp creates the file with mode 0600 before anything is written to it.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


@dataclass(frozen=True)
class PasswordEntry:
    roles: tuple[str, ...]
    encoded: str
    iterations: int


def read_password_file(path: Path) -> dict[str, PasswordEntry]:
    """Parse the file; bad lines are logged (by number, never content) and skipped."""
    entries: dict[str, PasswordEntry] = {}
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(":", 2)
            if len(parts) != 3:
                log.warning("%s line %d: expected login:roles:hash, skipped", path, number)
                continue
            login, roles_text, encoded = (p.strip() for p in parts)
            roles = tuple(r.strip() for r in roles_text.split(",") if r.strip())
            try:
                _check_login(login)
                _check_roles(roles)
            except ValueError as exc:
                log.warning("%s line %d: %s, skipped", path, number, exc)
                continue
            parsed = _parse_hash(encoded)
            if parsed is None:
                log.warning(
                    "%s line %d: hash is not a %s hash we accept, skipped", path, number, SCHEME
                )
                continue
            if login in entries:
                log.warning("%s line %d: duplicate login, the later line wins", path, number)
            entries[login] = PasswordEntry(roles=roles, encoded=encoded, iterations=parsed[0])
    return entries


class FileAuthenticator(Authenticator):
    """Checks passwords against a file of PBKDF2 hashes (option `path`)."""

    def __init__(self, options: Mapping[str, str]) -> None:
        super().__init__(options)
        self.path = Path(self.option("path"))
        if not self.path.is_file():
            raise ValueError(f"option 'path': no password file at {str(self.path)!r}")
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._entries: dict[str, PasswordEntry] = {}
        self._dummy_hash = hash_password(secrets.token_urlsafe(16))
        self._reload_if_changed()

    def _reload_if_changed(self) -> dict[str, PasswordEntry]:
        """Re-read the file when its mtime (or size or inode) changed; cheap otherwise."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                # Fail closed: a removed file means nobody can log in with it.
                if self._stamp is not None:
                    log.warning("password file %s has disappeared; no logins accepted", self.path)
                self._stamp, self._entries = None, {}
                return self._entries
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp != self._stamp:
                if os.name == "posix" and st.st_mode & 0o077:
                    log.warning("password file %s is readable by others; chmod 600 it", self.path)
                self._entries = read_password_file(self.path)
                self._stamp = stamp
                self._dummy_hash = self._make_dummy_hash(self._entries)
                log.info("loaded %d login(s) from %s", len(self._entries), self.path)
            return self._entries

    def _make_dummy_hash(self, entries: dict[str, PasswordEntry]) -> str:
        """A hash costing what a real one costs, so unknown logins take as long as known ones."""
        counts = collections.Counter(entry.iterations for entry in entries.values())
        iterations = counts.most_common(1)[0][0] if counts else DEFAULT_ITERATIONS
        current = _parse_hash(self._dummy_hash)
        if current is not None and current[0] == iterations:
            return self._dummy_hash
        return hash_password(secrets.token_urlsafe(16), iterations=iterations)

    def authenticate(self, login: str, password: str) -> Identity | None:
        if not login or not password:
            return None
        entry = self._reload_if_changed().get(login)
        if entry is None:
            verify_password(password, self._dummy_hash)  # same cost, result ignored
            return None
        if not verify_password(password, entry.encoded):
            return None
        return Identity(login=login, roles=entry.roles)
