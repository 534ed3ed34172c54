"""The outbound-host policy: which URLs the server itself may call (model providers now,
connections later).

A URL must be ``http`` or ``https`` with a host; the host is resolved and *every* address
it resolves to must be globally routable: loopback, private (RFC 1918, ULA), link-local,
shared (100.64/10), reserved, multicast and unspecified addresses are refused, and so are
the cloud metadata endpoints by name. ``RUNYARD_ALLOWED_HOSTS`` (comma-separated host
names, addresses or CIDRs; ``RUNYARD_OUTBOUND_ALLOW`` is its older name) lets some through: a host name matches the URL's host as
written, an address or network matches what it resolves to. A metadata address is let
through only when listed exactly (a network around it does not count).

The check runs when a URL is saved and again before each call (an address can change
between the two). A caller that must not be fooled by a name that resolves differently the
second time (DNS rebinding) resolves once with ``pin`` and connects to the address it got:
``PinnedTransport`` does so for httpx (the URL's host stays the Host header and the TLS
server name), database drivers take the address beside the host name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from runyard.services.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Instance-metadata endpoints of the clouds (AWS, GCP, Azure, OpenStack; AWS's IPv6 one;
# ECS task metadata; Alibaba; Oracle).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "169.254.169.123"))
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"})
Resolver = Callable[[str, int], list[str]]


ALLOW_HINT = ("; allow it with RUNYARD_ALLOWED_HOSTS (host names, addresses or CIDRs, comma-separated; "
              "RUNYARD_OUTBOUND_ALLOW is its older name)")


class OutboundRefused(ValidationFailed):
    code = "outbound_host_refused"


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _plain(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return mapped
        if address.scope_id:
            return ipaddress.IPv6Address(str(address).split("%")[0])
    return address


def why_refused(address: IPAddress) -> str | None:
    """Why an address is not one the server may call by default, or None."""
    address = _plain(address)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or address.is_reserved or not address.is_global:
        return "not a public address"
    return None


class OutboundPolicy:
    def __init__(self, allow: Iterable[str] = (), *, resolver: Resolver = system_resolver) -> None:
        self.hosts: set[str] = set()
        self.addresses: set[IPAddress] = set()
        self.networks: list[IPNetwork] = []
        for raw in allow:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                if "/" in entry:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                else:
                    self.addresses.add(ipaddress.ip_address(entry.strip("[]")))
            except ValueError:
                self.hosts.add(entry.rstrip("."))
        self.resolver = resolver

    @classmethod
    def from_setting(cls, value: str | None, **kwargs: Any) -> OutboundPolicy:
        return cls((value or "").split(","), **kwargs)

    def _allowed(self, address: IPAddress) -> bool:
        plain = _plain(address)
        if plain in self.addresses or address in self.addresses:
            return True
        if plain in METADATA_ADDRESSES:
            return False  # only when named exactly
        return any(plain in net for net in self.networks if net.version == plain.version)

    def check(self, url: str, *, field: str = "base_url") -> str:
        """``url`` normalised (no trailing slash) if the server may call it; else 400
        ``invalid_url`` or ``outbound_host_refused`` saying why."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ValidationFailed(f"{field}: not a valid URL ({exc})", code="invalid_url",
                                   details={"field": field}) from None
        if parts.scheme not in ("http", "https"):
            raise ValidationFailed(f"{field}: only http and https URLs are allowed, not {parts.scheme or 'none'!r}",
                                   code="invalid_url", details={"field": field})
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise ValidationFailed(f"{field}: the URL has no host", code="invalid_url", details={"field": field})
        if parts.username or parts.password:
            raise ValidationFailed(f"{field}: credentials in the URL are not allowed (give the API key instead)",
                                   code="invalid_url", details={"field": field})
        port = port or (443 if parts.scheme == "https" else 80)
        if host not in self.hosts:
            self.addresses_for(host, port, field=field)
        return url.strip().rstrip("/")

    def addresses_for(self, host: str, port: int, *, field: str = "host") -> list[IPAddress]:
        """What ``host`` resolves to (once), each address one the server may call; else 400
        ``outbound_host_refused`` or ``outbound_host_unresolvable``. A host allow-listed by
        name passes whatever it resolves to."""
        host = host.strip().strip("[]").rstrip(".").lower()
        if not host:
            raise ValidationFailed(f"{field}: no host", code="invalid_url", details={"field": field})
        if host in METADATA_HOSTS and host not in self.hosts:
            raise OutboundRefused(f"{field}: {host} is a cloud metadata host{ALLOW_HINT}",
                                  details={"field": field, "host": host})
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = [ipaddress.ip_address(a.split("%")[0]) for a in self.resolver(host, port)]
            except (OSError, UnicodeError, ValueError) as exc:
                raise ValidationFailed(f"{field}: the host {host} does not resolve ({exc})",
                                       code="outbound_host_unresolvable", details={"field": field, "host": host}) from None
            if not addresses:
                raise ValidationFailed(f"{field}: the host {host} does not resolve", code="outbound_host_unresolvable",
                                       details={"field": field, "host": host})
        if host in self.hosts:
            return addresses
        for address in addresses:
            reason = why_refused(address)
            if reason is not None and not self._allowed(address):
                raise OutboundRefused(f"{field}: {host} resolves to {address}, {reason}{ALLOW_HINT}",
                                      details={"field": field, "host": host, "address": str(address)})
        return addresses

    def pin(self, host: str, port: int, *, field: str = "host") -> str:
        """The one address to connect to for ``host``: resolved once and checked, so the
        connection goes where the check looked (a second lookup could answer otherwise)."""
        return str(self.addresses_for(host, port, field=field)[0])


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport that connects only to addresses the policy lets through: each
    request's host is resolved once, checked, and the connection made to that address,
    with the original host name kept as the Host header and the TLS server name (so
    certificates are checked against the name). Use it with ``follow_redirects=False``."""

    def __init__(self, policy: OutboundPolicy, *, field: str = "url", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy
        self.field = field

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        address = self.policy.pin(host, port, field=self.field)
        if address != host:
            request.url = request.url.copy_with(host=address)
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return super().handle_request(request)
