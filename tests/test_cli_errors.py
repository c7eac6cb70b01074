"""No silent paths: every configuration mistake and command-line failure is one line and a
non-zero exit, never a traceback, never ignored."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys

import pytest

from ispyb_falcon import cli
from ispyb_falcon.app import make_authenticators
from ispyb_falcon.config import ConfigError, load_settings


def run(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ispyb_falcon.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_a_mistyped_environment_variable_is_refused_with_a_suggestion():
    with pytest.raises(
        ConfigError, match="ISPYB_FALCON_DATABSE_URL; did you mean ISPYB_FALCON_DATABASE_URL"
    ):
        load_settings(None, environ={"ISPYB_FALCON_DATABSE_URL": "sqlite:///x"})


def test_the_test_suites_own_switches_are_not_settings():
    load_settings(None, environ={"ISPYB_FALCON_TEST_REQUIRE_LDAP": "1"})


def test_an_authenticator_option_can_come_from_the_environment(tmp_path):
    passwords = tmp_path / "passwords"
    passwords.write_text("")
    settings = load_settings(
        None,
        environ={
            "ISPYB_FALCON_AUTH_AUTHENTICATORS": "file",
            "ISPYB_FALCON_AUTHENTICATOR_FILE_PATH": str(passwords),
        },
    )
    assert settings.authenticator_options["file"]["path"] == str(passwords)
    assert len(make_authenticators(settings)) == 1


def test_the_environment_overrides_an_authenticator_option_of_the_file(tmp_path):
    config = tmp_path / "site.ini"
    config.write_text("[authenticator:ldap]\nurl = ldap://old.example.org\nbase_dn = dc=x\n")
    settings = load_settings(
        config, environ={"ISPYB_FALCON_AUTHENTICATOR_LDAP_URL": "ldaps://new.example.org"}
    )
    assert settings.authenticator_options["ldap"] == {
        "url": "ldaps://new.example.org",
        "base_dn": "dc=x",
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["token", "--login", "svc", "--role", "processing", "--days", "-5"], "--days: must be"),
        (["demo-data", "--database", "sqlite:///x.sqlite", "--scale", "0"], "--scale: must be"),
        (["demo", "--port", "70000", "--no-serve"], "--port: must be from 1 to 65535"),
    ],
)
def test_meaningless_values_are_refused_in_one_line(args, message):
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_port_already_in_use_is_one_line_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("demo", "--database", str(tmp_path / "demo.sqlite"), "--port", str(port))
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_says_when_it_reuses_a_database_and_ignores_scale(tmp_path):
    path = tmp_path / "demo.sqlite"
    assert run("demo", "--database", str(path), "--no-serve").returncode == 0
    again = run("demo", "--database", str(path), "--no-serve", "--scale", "3")
    assert again.returncode == 0
    assert "using the existing demo database" in again.stderr
    assert "--scale 3 applies only when it is created" in again.stderr


def test_demo_data_takes_a_sqlite_path_like_demo(tmp_path):
    path = tmp_path / "copy.sqlite"
    done = run("demo-data", "--database", str(path))
    assert done.returncode == 0, done.stderr
    assert path.stat().st_size > 0 and "inserted" in done.stderr


def _commands(parser: argparse.ArgumentParser, path: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path} {name}".strip(), sub
                yield from _commands(sub, f"{path} {name}")


def test_every_option_of_every_command_has_help():
    for name, command in _commands(cli.parser()):
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]} has no help text"
    assert "(default: 8080)" in run("demo", "--help").stdout


@pytest.mark.parametrize(
    "url, message",
    [
        ("garbage", "ISPYB_FALCON_DATABASE_URL: not a database URL"),
        (
            "postgresql://ispyb:hunter22@db/ispyb",
            "ISPYB_FALCON_DATABASE_URL: postgresql is not supported",
        ),
    ],
)
def test_a_bad_database_url_names_its_key_and_never_its_password(url, message):
    with pytest.raises(ConfigError) as refused:
        load_settings(None, environ={"ISPYB_FALCON_DATABASE_URL": url})
    assert str(refused.value).startswith(message)
    assert "hunter22" not in str(refused.value)


def test_an_unreachable_database_names_the_key_and_hides_the_password(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "ISPYB_FALCON_DATABASE_URL": "mysql+pymysql://ispyb:hunter22@127.0.0.1:1/ispyb",
        "ISPYB_FALCON_SERVER_DEBUG": "true",
    }
    done = run("serve", env=env)
    assert done.returncode == 2
    assert (
        "cannot read the database of [database] url (mysql+pymysql://ispyb:***@127.0.0.1:1/ispyb"
        in done.stderr
    )
    assert "hunter22" not in done.stderr and "Traceback" not in done.stderr
