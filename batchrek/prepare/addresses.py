"""Which network addresses a URL source may reach (server-side request forgery).

A manifest is data, often written by someone else. Without a rule, an ``https://``
line could make batchrek fetch the cloud metadata service (credentials), an admin
page on localhost, or anything on the internal network, and put the answer into the
results. The rule is checked on the address actually connected to, at connect time,
for every connection and so for every redirect hop:

    refused always       link-local 169.254.0.0/16, fe80::/10 (cloud metadata lives
                         there: 169.254.169.254, 169.254.170.2), other metadata
                         addresses (Azure 168.63.129.16, Alibaba 100.100.100.200,
                         Oracle 192.0.0.192, AWS fd00:ec2::254), multicast, reserved
                         and documentation ranges, "this network" 0.0.0.0/8, ::,
                         Teredo and other IPv6 transition ranges that are not IPv4
    allow_private_addresses   10/8, 172.16/12, 192.168/16, 100.64/10 (carrier NAT),
                              fc00::/7 (unique local), fec0::/10 (site local)
    allow_loopback_addresses  127/8, ::1 (local use and tests)

IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64
(``64:ff9b::a.b.c.d``) and 6to4 (``2002:AABB:CCDD::``) addresses are judged by the
IPv4 address inside them.

Three places apply it (all built by ``make_http_session``): the resolver drops
refused addresses from every DNS answer (a name that resolves only to refused
addresses fails before any connection, with a clear message); the socket factory
refuses to create a socket for a refused address (the connect-time check: it also
covers literal IPs, which aiohttp never resolves, and a DNS answer that changed
between lookups); and the downloader checks a literal-IP URL before sending anything.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = ["AddressPolicy", "AddressRefused", "make_http_session"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack instance metadata
        "169.254.170.2",  # ECS task metadata and credentials
        "169.254.170.23",  # EKS Pod Identity agent
        "168.63.129.16",  # Azure wire server (a public address)
        "100.100.100.200",  # Alibaba Cloud metadata
        "192.0.0.192",  # Oracle Cloud metadata
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # EKS Pod Identity agent over IPv6
    )
)


def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# (networks, what they are, the setting that allows them or None)
_V4_RULES: Final = (
    (_nets("127.0.0.0/8"), "loopback", "allow_loopback_addresses"),
    (_nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "private", "allow_private_addresses"),
    (_nets("100.64.0.0/10"), "shared (carrier-grade NAT)", "allow_private_addresses"),
    (_nets("169.254.0.0/16"), "link-local (cloud metadata)", None),
    (_nets("224.0.0.0/4"), "multicast", None),
    (
        _nets(
            "0.0.0.0/8",
            "192.0.0.0/24",
            "192.0.2.0/24",
            "192.88.99.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",
        ),
        "reserved",
        None,
    ),
)
_V6_RULES: Final = (
    (_nets("::1/128"), "loopback", "allow_loopback_addresses"),
    (_nets("fc00::/7"), "unique-local", "allow_private_addresses"),
    (_nets("fec0::/10"), "site-local", "allow_private_addresses"),
    (_nets("fe80::/10"), "link-local", None),
    (_nets("ff00::/8"), "multicast", None),
    (
        _nets(
            "::/128",
            "100::/64",
            "2001::/32",  # Teredo
            "2001:db8::/32",
            "64:ff9b:1::/48",
            "3fff::/20",
        ),
        "reserved",
        None,
    ),
)
_MAPPED: Final = ipaddress.ip_network("::ffff:0:0/96")
_COMPATIBLE: Final = ipaddress.ip_network("::/96")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_6TO4: Final = ipaddress.ip_network("2002::/16")


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form carries, if it is one."""
    value = int(address)
    if address in _MAPPED or address in _NAT64:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _COMPATIBLE and value > 1:  # not :: or ::1
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _6TO4:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    return None


class AddressRefused(OSError):
    """A connection to an address the policy refuses; ``reason`` says which and why."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The address rule (module docstring); both settings off by default."""

    allow_private: bool = False
    allow_loopback: bool = False

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why ``address`` may not be connected to, or None if it may."""
        try:
            ip = (
                ipaddress.ip_address(address.split("%", 1)[0])
                if isinstance(address, str)
                else address
            )
        except ValueError:
            return f"{address!r} is not an IP address"
        if isinstance(ip, ipaddress.IPv6Address):
            inner = _embedded_v4(ip)
            if inner is not None:
                why = self.refusal(inner)
                return None if why is None else f"{why} (inside IPv6 {ip})"
        if ip in _METADATA:
            return f"{ip} is a cloud metadata address; never fetched"
        rules = _V4_RULES if isinstance(ip, ipaddress.IPv4Address) else _V6_RULES
        for networks, what, setting in rules:
            for net in networks:
                if ip in net:
                    if setting == "allow_private_addresses" and self.allow_private:
                        return None
                    if setting == "allow_loopback_addresses" and self.allow_loopback:
                        return None
                    fix = f"; set {setting} = true to allow it" if setting else "; never fetched"
                    return f"{ip} is a {what} address ({net}){fix}"
        return None

    def check(self, host: str, address: str) -> None:
        why = self.refusal(address)
        if why is not None:
            raise AddressRefused(host, why)


class _PolicyResolver(AbstractResolver):
    """aiohttp's resolver with the refused addresses taken out of every answer."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        allowed = [a for a in answers if self._policy.refusal(a["host"]) is None]
        if not allowed:
            raise AddressRefused(
                host, "; ".join(sorted({str(self._policy.refusal(a["host"])) for a in answers}))
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _socket_factory(policy: AddressPolicy) -> Any:
    def make(addr_info: Any) -> socket.socket:
        family, kind, proto, _canon, sockaddr = addr_info
        policy.check(str(sockaddr[0]), str(sockaddr[0]))  # the connect-time check
        return socket.socket(family=family, type=kind, proto=proto)

    return make


def make_http_session(policy: AddressPolicy, *, connections: int) -> aiohttp.ClientSession:
    """The session for URL sources: every connection goes through ``policy``.
    No proxy from the environment (``trust_env`` off): a proxy would connect for us,
    out of the policy's sight."""
    connector = aiohttp.TCPConnector(
        resolver=_PolicyResolver(policy),
        socket_factory=_socket_factory(policy),
        limit=connections,
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False)
