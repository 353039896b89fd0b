"""Which addresses a URL source may reach, judged on the resolved address. No packet
leaves this machine: the rule is a pure function of the address, and the connect-time
hook is exercised against 127.0.0.1 only."""

from __future__ import annotations

import socket

import pytest

from batchrek.prepare import AddressPolicy
from batchrek.prepare.addresses import AddressRefused, make_http_session

DEFAULT = AddressPolicy()

REFUSED_ALWAYS = [
    "169.254.169.254",  # instance metadata
    "169.254.170.2",  # ECS credentials
    "169.254.1.1",  # link-local
    "168.63.129.16",  # Azure wire server (a public address)
    "100.100.100.200",  # Alibaba metadata
    "192.0.0.192",  # Oracle metadata
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fe80::1",
    "fe80::1%eth0",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "0.0.0.0",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.10",
    "198.18.0.1",
    "::",
    "2001:db8::1",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::169.254.169.254",  # IPv4-compatible
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
]
LOOPBACK = ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]
PRIVATE = [
    "10.0.0.5",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "100.64.0.1",
    "fc00::1",
    "fd12:3456::1",
    "::ffff:10.1.2.3",
    "2002:0a00:0001::1",  # 6to4 of 10.0.0.1
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED_ALWAYS + LOOPBACK + PRIVATE)
def test_refused_by_default(address: str) -> None:
    assert DEFAULT.refusal(address) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.refusal(address) is None


@pytest.mark.parametrize("address", PRIVATE)
def test_allow_private_addresses_allows_private_ranges(address: str) -> None:
    assert AddressPolicy(allow_private=True).refusal(address) is None


@pytest.mark.parametrize("address", LOOPBACK)
def test_allow_loopback_addresses_allows_loopback(address: str) -> None:
    assert AddressPolicy(allow_loopback=True).refusal(address) is None


@pytest.mark.parametrize("address", REFUSED_ALWAYS)
def test_metadata_link_local_and_reserved_stay_refused_whatever_is_allowed(address: str) -> None:
    assert AddressPolicy(allow_private=True, allow_loopback=True).refusal(address) is not None


def test_private_allowed_does_not_allow_loopback() -> None:
    assert AddressPolicy(allow_private=True).refusal("127.0.0.1") is not None


def test_the_refusal_names_the_setting_that_allows_it() -> None:
    assert "allow_private_addresses" in str(DEFAULT.refusal("10.0.0.5"))
    assert "allow_loopback_addresses" in str(DEFAULT.refusal("::1"))
    assert "metadata" in str(DEFAULT.refusal("169.254.169.254"))


@pytest.mark.anyio
async def test_the_connect_time_hook_refuses_a_socket_to_a_refused_address() -> None:
    """The socket factory sees the address a connection is really made to (whatever
    the resolver said earlier), and refuses it before connect() is ever called."""
    session = make_http_session(DEFAULT, connections=1)
    try:
        factory = session.connector._socket_factory  # type: ignore[union-attr]
        with pytest.raises(AddressRefused, match="loopback"):
            factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443)))
    finally:
        await session.close()


@pytest.mark.anyio
async def test_the_resolver_drops_refused_answers() -> None:
    """``localhost`` resolves (from /etc/hosts, no network) to loopback only."""
    session = make_http_session(DEFAULT, connections=1)
    try:
        resolver = session.connector._resolver  # type: ignore[union-attr]
        with pytest.raises(AddressRefused, match="loopback"):
            await resolver.resolve("localhost", 80, socket.AF_INET)
    finally:
        await session.close()
