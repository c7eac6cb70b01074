"""INI file + environment -> typed settings.

Every key of the example file (`conf/ispyb-falcon.example.ini`) can be
overridden by an environment variable named `ISPYB_FALCON_<SECTION>_<KEY>`
(upper case), an authenticator's options by `ISPYB_FALCON_AUTHENTICATOR_<NAME>_<OPTION>`,
so a container or a Windows service can be configured without editing the file;
any other `ISPYB_FALCON_*` variable is refused (but `ISPYB_FALCON_TEST_*`, the
test suite's). A bad value is one `ConfigError` naming the key; the CLI
turns it into a one-line message and exit code 2.
"""

from __future__ import annotations

import configparser
import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_FILE = "ISPYB_FALCON_CONFIG"
ENV_PREFIX = "ISPYB_FALCON_"
ENV_GROUPS = "ISPYB_FALCON_BEAMLINE_GROUPS"
# ISPYB_FALCON_AUTHENTICATOR_<NAME>_<OPTION>: an option of [authenticator:<name>]
ENV_AUTHENTICATOR = "ISPYB_FALCON_AUTHENTICATOR_"
ENV_TESTS = "ISPYB_FALCON_TEST_"  # the test suite's own switches, not settings
EXAMPLE_SECRET = "change-me-to-a-long-random-secret-of-32-bytes-or-more"
DEMO_DATABASE_URL = "sqlite:///ispyb-falcon-demo.sqlite"


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        n = int(value)
        if not lo <= n <= hi:
            raise ValueError(f"expected an integer from {lo} to {hi}")
        return n

    return parse


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.replace("\n", ",").split(",") if item.strip())


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        v = value.strip()
        if v not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return v

    return parse


def _prefix(value: str) -> str:
    v = value.strip().rstrip("/")
    if v and not v.startswith("/"):
        raise ValueError("must start with '/'")
    return v


def _str(value: str) -> str:
    return value.strip()


def _database_url(value: str) -> str:
    """A SQLAlchemy URL of a database this server speaks to: MariaDB/MySQL or SQLite."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    v = value.strip()
    try:
        backend = make_url(v).get_backend_name()
    except ArgumentError:
        raise ValueError(
            "not a database URL; expected mysql+pymysql://user:password@host:3306/ispyb"
            " or sqlite:///path/to/file.sqlite"
        ) from None
    if backend not in ("mysql", "mariadb", "sqlite"):
        raise ValueError(f"{backend} is not supported; ISPyB runs on MariaDB (mysql+pymysql://)")
    return v


def _proxies(value: str) -> tuple[str, ...]:
    from .auth.proxies import check_entry

    return tuple(check_entry(entry) for entry in _list(value))


# (section, key) -> (parser, default). The one table of every setting: the
# example INI documents the same keys, and a test checks they agree.
KEYS: dict[tuple[str, str], tuple[Callable[[str], Any], str]] = {
    ("server", "debug"): (_bool, "false"),
    ("server", "host"): (_str, "127.0.0.1"),
    ("server", "port"): (_int_range(1, 65535), "8080"),
    ("server", "prefix"): (_prefix, "/ispyb/api/v1"),
    ("server", "threads"): (_int_range(1, 256), "8"),
    ("server", "max_body_bytes"): (_int_range(1024, 1 << 30), "1048576"),
    ("server", "docs"): (_bool, "true"),
    ("server", "cors_origins"): (_list, ""),
    ("server", "modules"): (_list, "all"),
    ("server", "log_level"): (_choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
    ("server", "trusted_proxies"): (_proxies, ""),
    ("database", "url"): (_database_url, DEMO_DATABASE_URL),
    ("database", "schemas_dir"): (_str, ""),
    ("database", "schema_check"): (_choice("error", "warn", "off"), "warn"),
    ("database", "pool_size"): (_int_range(1, 256), "10"),
    ("database", "connect_timeout"): (_int_range(1, 300), "5"),
    ("database", "statement_timeout"): (_int_range(0, 3600), "30"),
    ("query", "default_limit"): (_int_range(1, 100000), "25"),
    ("query", "max_limit"): (_int_range(1, 100000), "1000"),
    ("visibility", "proposal_members_see_all_sessions"): (_bool, "true"),
    ("tokens", "algorithm"): (_choice("HS256", "RS256", "ES256"), "HS256"),
    ("tokens", "secret"): (_str, ""),
    ("tokens", "private_key_file"): (_str, ""),
    ("tokens", "public_key_file"): (_str, ""),
    ("tokens", "issuer"): (_str, "ispyb-falcon"),
    ("tokens", "audience"): (_str, "ispyb"),
    ("tokens", "lifetime_minutes"): (_int_range(1, 60 * 24 * 366), "720"),
    ("auth", "authenticators"): (_list, "dummy"),
    ("auth", "login_max_failures"): (_int_range(1, 1000), "5"),
    ("auth", "login_window_seconds"): (_int_range(1, 86400), "300"),
    ("auth", "address_max_failures"): (_int_range(1, 4000), "20"),
    ("auth", "known_address_days"): (_int_range(0, 366), "30"),
    ("auth", "limiter"): (_choice("memory", "database", "redis"), "memory"),
    ("auth", "limiter_url"): (_str, ""),
    ("files", "roots"): (_list, ""),
    ("files", "link_minutes"): (_int_range(1, 24 * 60), "5"),
}


@dataclass(frozen=True)
class BeamlineGroup:
    """Holding `permission` makes a person staff for `beamlines`."""

    name: str
    permission: str
    beamlines: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    """The typed configuration. Build it with `load_settings`."""

    values: Mapping[tuple[str, str], Any]
    beamline_groups: tuple[BeamlineGroup, ...] = ()
    authenticator_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    source: str = "defaults"

    def __getitem__(self, key: tuple[str, str]) -> Any:
        return self.values[key]

    def replace(self, **changes: Any) -> Settings:
        """A copy with `section_key=value` overrides (already typed), for tests and the CLI."""
        values = dict(self.values)
        groups = changes.pop("beamline_groups", self.beamline_groups)
        options = changes.pop("authenticator_options", self.authenticator_options)
        for name, value in changes.items():
            section, _, key = name.partition("_")
            if (section, key) not in KEYS:
                raise ConfigError(f"unknown setting {name}")
            values[(section, key)] = value
        return Settings(values, tuple(groups), dict(options), self.source)

    @property
    def prefix(self) -> str:
        return self.values[("server", "prefix")]


def _parse_groups(section: Mapping[str, str]) -> tuple[BeamlineGroup, ...]:
    groups = []
    for name, text in section.items():
        permission, sep, beamlines = text.partition(":")
        lines = _list(beamlines)
        if not sep or not permission.strip() or not lines:
            raise ConfigError(
                f"[beamline_groups] {name}: expected 'permission: beamline, beamline', got {text!r}"
            )
        groups.append(BeamlineGroup(name, permission.strip(), lines))
    return tuple(groups)


# Values that may hold a password: an error names their key, never repeats the value.
SECRET_VALUES = {("database", "url"), ("tokens", "secret"), ("auth", "limiter_url")}


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the INI file (if any) and the environment; the environment wins."""
    env = os.environ if environ is None else environ
    path = path or env.get(ENV_FILE) or None
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep case of beamline group names and plug-in options
    source = "defaults"
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"configuration file not found: {p}")
        try:
            parser.read(p, encoding="utf-8")
        except configparser.Error as exc:
            raise ConfigError(f"{p}: {exc}") from None
        source = str(p)
    known_sections = {s for s, _ in KEYS} | {"beamline_groups"}
    for section in parser.sections():
        if section not in known_sections and not section.startswith("authenticator:"):
            raise ConfigError(f"unknown section [{section}] in {source}")
        if section in known_sections - {"beamline_groups"}:
            for key in parser[section]:
                if (section, key) not in KEYS:
                    raise ConfigError(f"unknown key {key!r} in section [{section}]")
    _refuse_unknown_environment(env)
    values: dict[tuple[str, str], Any] = {}
    for (section, key), (parse, default) in KEYS.items():
        env_name = f"{ENV_PREFIX}{section}_{key}".upper()
        raw = env.get(env_name)
        origin = env_name
        if raw is None:
            raw = parser.get(section, key, fallback=None)
            origin = f"[{section}] {key}"
        if raw is None:
            raw = default
        try:
            values[(section, key)] = parse(raw)
        except ValueError as exc:
            shown = "" if (section, key) in SECRET_VALUES else f" = {raw!r}"
            raise ConfigError(f"{origin}{shown}: {exc}") from None
    groups = (
        _parse_groups(parser["beamline_groups"]) if parser.has_section("beamline_groups") else ()
    )
    env_groups = env.get(ENV_GROUPS)
    if env_groups:  # "mx=mx_admin:i03,i04; em=em_admin:m01"
        pairs = dict(item.split("=", 1) for item in env_groups.split(";") if "=" in item)
        groups = _parse_groups(pairs)
    options = {
        s.split(":", 1)[1]: dict(parser[s])
        for s in parser.sections()
        if s.startswith("authenticator:")
    }
    _environment_options(env, options)
    settings = Settings(values, groups, options, source)
    if settings[("query", "default_limit")] > settings[("query", "max_limit")]:
        raise ConfigError("[query] default_limit must not exceed max_limit")
    return settings


def _refuse_unknown_environment(env: Mapping[str, str]) -> None:
    """A mistyped variable is refused like a mistyped INI key, never silently ignored."""
    known = {f"{ENV_PREFIX}{s}_{k}".upper() for s, k in KEYS} | {ENV_FILE, ENV_GROUPS}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in known or name.startswith(ENV_TESTS):
            continue
        if name.startswith(ENV_AUTHENTICATOR) and "_" in name[len(ENV_AUTHENTICATOR) :].strip("_"):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown setting in the environment: {name}{hint}")


def _environment_options(env: Mapping[str, str], options: dict[str, dict[str, str]]) -> None:
    """`ISPYB_FALCON_AUTHENTICATOR_LDAP_BASE_DN=...` sets `base_dn` of [authenticator:ldap]
    (the name is the part up to the first underscore, matched without case)."""
    for name, value in env.items():
        if not name.startswith(ENV_AUTHENTICATOR):
            continue
        plugin, _, option = name[len(ENV_AUTHENTICATOR) :].partition("_")
        plugin = next((n for n in options if n.lower() == plugin.lower()), plugin.lower())
        options.setdefault(plugin, {})[option.lower()] = value


def production_problems(settings: Settings) -> list[str]:
    """What makes this configuration unsafe outside development (debug = false)."""
    problems = []
    if "dummy" in settings[("auth", "authenticators")] or any(
        a.endswith("DummyAuthenticator") for a in settings[("auth", "authenticators")]
    ):
        problems.append(
            "[auth] authenticators: the dummy authenticator accepts any password; "
            "use file, ldap or a site plug-in (or set [server] debug = true for development)"
        )
    if settings[("tokens", "algorithm")] == "HS256":
        secret = settings[("tokens", "secret")]
        if secret == EXAMPLE_SECRET:
            problems.append("[tokens] secret: the example secret is public; generate your own")
        elif len(secret.encode()) < 32:
            problems.append("[tokens] secret: must be at least 32 bytes for HS256")
    return problems
