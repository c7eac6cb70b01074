"""Which address a request comes from, behind the site's reverse proxies.

Behind nginx every connection comes from nginx; the client's address is in
`X-Forwarded-For`, which each proxy extends with the address it was connected
from (`$proxy_add_x_forwarded_for`). Anyone can send that header, so it is read
only when the connection comes from a proxy listed in `[server]
trusted_proxies`, and then from the right: the right-most address that is not
itself a trusted proxy is the client. Everything to the left of it was written
by the client and proves nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
UNIX = "unix"  # the peer of a Unix socket (gunicorn --bind unix:...) has no address


def parse_address(text: str | None) -> IPAddress | None:
    """An address as proxies write them (`1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443`), or None."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port (a bare v6 has at least two colons)
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # ::ffff:1.2.3.4 is 1.2.3.4 on a dual-stack socket
    return address


def check_entry(entry: str) -> str:
    """One `trusted_proxies` entry, validated: an address, a network (CIDR) or `unix`."""
    entry = entry.strip()
    if entry == UNIX:
        return entry
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise ValueError(
            f"{entry!r} is not an address, a network such as 10.0.0.0/8, or {UNIX!r}"
        ) from None
    return entry


class TrustedProxies:
    """The proxies whose `X-Forwarded-For` is believed (none: the header is ignored)."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        entries = [check_entry(e) for e in entries]
        self.unix = UNIX in entries
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries if e != UNIX]

    def __bool__(self) -> bool:
        return self.unix or bool(self.networks)

    def trusts(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address as text; `-` when a Unix-socket peer is all there is."""
        hop = parse_address(peer)
        trusted = self.trusts(hop) if hop is not None else self.unix
        if trusted and forwarded_for:
            for entry in reversed(forwarded_for.split(",")):
                address = parse_address(entry)
                if address is None:
                    # A trusted proxy passed on something that is no address ("unknown"):
                    # the last hop it vouched for is the nearest client we know.
                    break
                hop = address
                if not self.trusts(address):
                    break
        return str(hop) if hop is not None else (peer or "-")
