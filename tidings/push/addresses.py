"""Which push endpoints may be reached: ``https`` to public addresses only (PROTOCOL-v2 §8).

An endpoint is a URL a browser gave, so a client chooses where this server
POSTs: without a rule that is a server-side request forgery into the
server's own network (a metadata service at 169.254.169.254, an admin port
on loopback). Every address a name resolves to must be public, checked
when the subscription is made and again on every connection (the resolver
below), since a name can resolve elsewhere later (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_ENDPOINT_CHARS = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointRefused(ValueError):
    """An endpoint this server will not POST to; the message says why."""


def is_public(address: Address) -> bool:
    """A globally routable unicast address, looking through IPv4-mapped IPv6."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_url(endpoint: str, *, allow_private: bool) -> tuple[str, int]:
    """The endpoint's host and port, if its form is acceptable; else ``EndpointRefused``."""
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise EndpointRefused(f"endpoint: at most {MAX_ENDPOINT_CHARS} characters")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise EndpointRefused("endpoint: not a URL") from None
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        raise EndpointRefused("endpoint: an https URL")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise EndpointRefused("endpoint: an https URL with a host and no user name")
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname, port or default


async def check_endpoint(endpoint: str, *, allow_private: bool) -> None:
    """Refuse an endpoint that is not https or reaches a non-public address."""
    host, port = check_url(endpoint, allow_private=allow_private)
    if allow_private:
        return
    for address in await resolve(host, port):
        if not is_public(address):
            raise EndpointRefused(f"endpoint: {host} is not a public address")


async def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to now (a literal address is itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise EndpointRefused(f"endpoint: {host} does not resolve") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    if not addresses:
        raise EndpointRefused(f"endpoint: {host} does not resolve")
    return addresses
