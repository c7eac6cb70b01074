"""Start a throw-away OpenLDAP `slapd` for the LDAP authenticator tests.

A real server rather than a mock, because what matters (DN escaping, bind
results, group filters) is decided by the server. Everything lives in a
temporary directory; the server listens on 127.0.0.1 on a free port.

Directory content (suffix dc=example,dc=org):
    alice  password alice-pw  in no group          -> default role
    bob    password bob-pw    member of cn=ispyb-admins (groupOfNames/member)
    carol  password carol-pw  member of cn=ispyb-managers (groupOfUniqueNames/uniqueMember)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .servers import stop

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ADMINS_DN = f"cn=ispyb-admins,{GROUPS}"
MANAGERS_DN = f"cn=ispyb-managers,{GROUPS}"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap")


def find_slapd() -> str | None:
    """Path of slapd, or None (it lives in sbin, often not on a user's PATH)."""
    for candidate in ("/usr/sbin/slapd", "/usr/local/sbin/slapd", "/usr/local/libexec/slapd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("slapd")


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RuntimeError(f"{name} not found (install slapd and ldap-utils)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LdapServer:
    """What a test needs to talk to the running server."""

    url: str
    port: int
    suffix: str = SUFFIX
    people: str = PEOPLE
    groups: str = GROUPS
    admins_dn: str = ADMINS_DN
    managers_dn: str = MANAGERS_DN

    def options(self, **overrides: str) -> dict[str, str]:
        """LdapAuthenticator options pointing at this server."""
        options = {
            "url": self.url,
            "user_dn_template": f"uid={{login}},{self.people}",
            "role_groups": f"admin={self.admins_dn}; manager={self.managers_dn}",
            "timeout": "5",
        }
        options.update(overrides)
        return options


def _slappasswd(password: str) -> str:
    out = subprocess.run(
        [_tool("slappasswd"), "-h", "{SSHA}", "-s", password],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _config(workdir: Path, root_hash: str) -> str:
    schema_dir = next((d for d in SCHEMA_DIRS if os.path.isdir(d)), SCHEMA_DIRS[0])
    module_dir = next((d for d in MODULE_DIRS if os.path.isdir(d)), None)
    module_lines = ""
    if module_dir and any(Path(module_dir).glob("back_mdb*")):
        module_lines = f"modulepath {module_dir}\nmoduleload back_mdb\n"
    schemas = "\n".join(
        f"include {schema_dir}/{name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")
    )
    return f"""{schemas}
{module_lines}pidfile {workdir}/slapd.pid
argsfile {workdir}/slapd.args

database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {root_hash}
directory {workdir}/data

access to attrs=userPassword
    by anonymous auth
    by self write
    by * none
access to *
    by users read
    by * none
"""


def _ldif() -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
    ]
    for login, password in USERS.items():
        entries.append(
            f"dn: uid={login},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {login}\n"
            f"cn: {login.title()}\nsn: {login.title()}\nuserPassword: {_slappasswd(password)}"
        )
    entries.append(
        f"dn: {ADMINS_DN}\nobjectClass: groupOfNames\ncn: ispyb-admins\nmember: uid=bob,{PEOPLE}"
    )
    entries.append(
        f"dn: {MANAGERS_DN}\nobjectClass: groupOfUniqueNames\ncn: ispyb-managers\n"
        f"uniqueMember: uid=carol,{PEOPLE}"
    )
    return "\n\n".join(entries) + "\n"


def _wait_until_ready(proc: subprocess.Popen, port: int, deadline: float) -> None:
    """Wait until slapd answers a bind, not merely until the port is open."""
    whoami = _tool("ldapwhoami")
    url = f"ldap://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"slapd exited with status {proc.returncode}")
        result = subprocess.run(
            [whoami, "-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
            capture_output=True,
            text=True,
        )
        if result.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("slapd did not answer within the time limit")


@contextlib.contextmanager
def running_slapd(timeout: float = 15.0) -> Iterator[LdapServer]:
    """Run slapd with the test directory loaded; stop it and remove its files on exit."""
    slapd = find_slapd()
    if slapd is None:
        raise RuntimeError("slapd not found")
    with tempfile.TemporaryDirectory(prefix="ispyb-falcon-slapd-") as tmp:
        workdir = Path(tmp)
        (workdir / "data").mkdir()
        conf = workdir / "slapd.conf"
        conf.write_text(_config(workdir, _slappasswd(ROOT_PASSWORD)))
        ldif = workdir / "data.ldif"
        ldif.write_text(_ldif())
        subprocess.run(
            [_tool("slapadd"), "-f", str(conf), "-l", str(ldif)],
            check=True,
            capture_output=True,
            text=True,
        )
        port = free_port()
        log = open(workdir / "slapd.log", "w")  # closed in the finally below
        # -d 0: stay in the foreground, so this process owns it and can stop it.
        proc = subprocess.Popen(
            [slapd, "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/", "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            try:
                _wait_until_ready(proc, port, time.monotonic() + timeout)
            except RuntimeError as exc:
                log.flush()
                detail = (workdir / "slapd.log").read_text()[-2000:]
                raise RuntimeError(f"{exc}\n{detail}") from None
            yield LdapServer(url=f"ldap://127.0.0.1:{port}", port=port)
        finally:
            stop(proc)
            log.close()
