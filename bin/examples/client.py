#!/usr/bin/env python3
"""A tiny ispyb-falcon client with the Python standard library only.

    bin/ispyb-falcon demo                      # in another terminal
    python3 bin/examples/client.py [BASE_URL]  # default http://127.0.0.1:8080/ispyb/api/v1

Login and password come from ISPYB_LOGIN / ISPYB_PASSWORD (default pi_anna / demo;
the demo accepts any password). Steps: log in, whoami, list the i03/i04 sessions
of mx1001, create a sample in mx1001, read it back, export the data collections
of mx1001-1 as CSV. An HTTP error prints its status and the JSON error and exits 1.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_BASE = "http://127.0.0.1:8080/ispyb/api/v1"


class ApiError(Exception):
    """An HTTP error answered by the API: status, and the JSON error's title and description."""

    def __init__(self, method: str, url: str, status: int, reason: str, body: bytes) -> None:
        self.status = status
        try:
            error = json.loads(body)
        except ValueError:  # not JSON (e.g. from a proxy): keep its text, on one line
            error = {"description": " ".join(body.decode("utf-8", "replace").split())[:300]}
        if not isinstance(error, dict):
            error = {"description": str(error)}
        self.title = error.get("title") or f"{status} {reason}"
        self.description = error.get("description") or ""
        self.errors = error.get("errors") or []
        details = "; ".join(f"{e.get('path')}: {e.get('message')}" for e in self.errors)
        text = f"{method} {url} -> HTTP {self.title}"
        if self.description:
            text += f": {self.description}"
        if details:
            text += f" [{details}]"
        super().__init__(text)


class IspybClient:
    """`IspybClient(base).login(login, password)`, then `.get`, `.post`, `.export_csv`."""

    def __init__(self, base: str = DEFAULT_BASE, timeout: float = 30) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.token: str | None = None

    def url(self, path: str, params: dict | None = None) -> str:
        url = self.base + "/" + path.lstrip("/")
        if params:
            url += "?" + urllib.parse.urlencode(params, safe=",[]")
        return url

    def request(
        self,
        method: str,
        path: str,
        params: dict | None = None,
        body: object = None,
        accept: str = "application/json",
        headers: dict | None = None,
    ) -> bytes:
        url = self.url(path, params)
        head = {"Accept": accept, **(headers or {})}
        if self.token and "Authorization" not in head:
            head["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            head["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, headers=head, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(method, url, exc.code, exc.reason, exc.read()) from None

    def login(self, login: str, password: str) -> dict:
        """HTTP Basic on GET /auth/login; keeps the token for the next requests."""
        basic = base64.b64encode(f"{login}:{password}".encode()).decode()
        answer = json.loads(
            self.request("GET", "/auth/login", headers={"Authorization": f"Basic {basic}"})
        )
        self.token = answer["token"]
        return answer

    def get(self, path: str, **params) -> dict:
        return json.loads(self.request("GET", path, params))

    def post(self, path: str, body: object) -> dict:
        return json.loads(self.request("POST", path, body=body))

    def export_csv(self, path: str, **params) -> list[list[str]]:
        """Every matching row (no paging) as CSV records; the first one is the header."""
        text = self.request("GET", path, params, accept="text/csv").decode("utf-8")
        return list(csv.reader(io.StringIO(text, newline="")))


class Abort(Exception):
    """A step cannot go on (not an HTTP error): print the reason, exit 1."""


def run(base: str, login: str, password: str) -> None:
    client = IspybClient(base)

    me = client.login(login, password)
    print(f"logged in as {me['login']} (personId {me['personId']}, roles {','.join(me['roles'])})")

    who = client.get("/auth/whoami")
    print(f"whoami: {who['login']} roles={','.join(who['roles'])} expires {who['expiresAt']}")

    sessions = client.get(
        "/sessions", proposal="mx1001", beamLineName="i03,i04", order_by="startDate"
    )
    visits = ", ".join(
        f"mx1001-{s['visit_number']} {s['beamLineName']} {s['startDate']}"
        for s in sessions["results"]
    )
    print(f"sessions ({sessions['total']}): {visits or '(none)'}")

    crystals = client.get("/crystals", proposal="mx1001", limit=1)["results"]
    containers = client.get("/containers", proposal="mx1001", limit=1)["results"]
    if not crystals or not containers:
        raise Abort(f"{login} sees no crystal and container in mx1001 to put a sample in")
    crystal, container = crystals[0], containers[0]
    epoch = int(time.time())
    sample = client.post(
        "/samples",
        {
            "crystalId": crystal["crystalId"],
            "containerId": container["containerId"],
            "name": f"example-{epoch}",
            "location": str(epoch % 1000),
        },
    )
    print(
        f"created sample {sample['blSampleId']} name={sample['name']}"
        f" crystalId={sample['crystalId']} containerId={sample['containerId']}"
        f" location={sample['location']}"
    )

    again = client.get(f"/samples/{sample['blSampleId']}")
    print(
        f"read back sample {again['blSampleId']} name={again['name']}"
        f" recordTimeStamp={again['recordTimeStamp']}"
    )

    records = client.export_csv("/datacollections", session="mx1001-1")
    print(f"csv rows: {len(records)} (header + {len(records) - 1} data collections of mx1001-1)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "base", nargs="?", default=DEFAULT_BASE, help=f"API base URL ({DEFAULT_BASE})"
    )
    args = parser.parse_args(argv)
    login = os.environ.get("ISPYB_LOGIN") or "pi_anna"
    password = os.environ.get("ISPYB_PASSWORD") or "demo"
    try:
        run(args.base, login, password)
    except (ApiError, Abort) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: cannot reach {args.base}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
