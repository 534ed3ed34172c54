"""The outbound-host policy: http(s) only; loopback, private, link-local, metadata and
other non-public addresses refused unless allow-listed (RUNYARD_OUTBOUND_ALLOW)."""

from __future__ import annotations

import pytest

from runyard.services.errors import ValidationFailed
from runyard.services.outbound import OutboundPolicy


def resolver(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]
    return resolve


HOSTS = {"api.example.com": ["93.184.216.34"], "internal.corp": ["10.1.2.3"], "sneaky.example": ["8.8.8.8", "127.0.0.1"],
         "v6.example": ["2606:4700:4700::1111"], "mapped.example": ["::ffff:127.0.0.1"]}


def policy(*allow: str) -> OutboundPolicy:
    return OutboundPolicy(allow, resolver=resolver(HOSTS))


@pytest.mark.parametrize("url", ["https://api.example.com/v1", "http://93.184.216.34:8080/v1/",
                                 "https://v6.example/v1", "https://[2606:4700:4700::1111]/v1"])
def test_public_hosts_pass(url):
    assert policy().check(url) == url.rstrip("/")


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:11434/v1", "loopback"),
    ("http://localhost.localdomain/v1", None),
    ("http://[::1]/v1", "loopback"),
    ("http://10.0.0.5/v1", "private"),
    ("http://192.168.1.10/v1", "private"),
    ("http://172.16.0.1/v1", "private"),
    ("http://internal.corp/v1", "private"),
    ("http://169.254.169.254/latest/meta-data", "metadata"),
    ("http://[fd00:ec2::254]/latest", "metadata"),
    ("http://100.100.100.200/", "metadata"),
    ("http://169.254.10.10/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://0.0.0.0/", None),
    ("http://100.64.0.1/", "not a public"),
    ("http://sneaky.example/v1", "loopback"),  # one bad address among the answers is enough
    ("http://mapped.example/v1", "loopback"),  # IPv4-mapped IPv6
    ("http://metadata.google.internal/computeMetadata/v1", "metadata"),
])
def test_non_public_addresses_are_refused(url, reason):
    with pytest.raises(ValidationFailed) as caught:
        policy().check(url)
    assert caught.value.code in ("outbound_host_refused", "outbound_host_unresolvable")
    if reason:
        assert reason in caught.value.message and "RUNYARD_OUTBOUND_ALLOW" in caught.value.message


@pytest.mark.parametrize("url", ["ftp://api.example.com/", "file:///etc/passwd", "gopher://x/", "api.example.com",
                                 "http:///nohost", "https://user:pw@api.example.com/v1", "http://[::1/"])
def test_only_http_urls_with_a_host(url):
    with pytest.raises(ValidationFailed) as caught:
        policy().check(url)
    assert caught.value.code == "invalid_url"


def test_unresolvable_host():
    with pytest.raises(ValidationFailed) as caught:
        policy().check("https://nowhere.invalid/v1")
    assert caught.value.code == "outbound_host_unresolvable"


def test_allow_list_by_address_cidr_and_host():
    assert policy("127.0.0.1").check("http://127.0.0.1:9999/v1")
    assert policy("10.0.0.0/8").check("http://internal.corp/v1")
    assert policy("internal.corp").check("http://internal.corp/v1")
    assert policy("::1").check("http://[::1]:8080/v1")
    with pytest.raises(ValidationFailed):
        policy("10.0.0.0/8").check("http://192.168.1.1/v1")  # only what is listed


def test_metadata_needs_an_exact_entry():
    with pytest.raises(ValidationFailed):
        policy("169.254.0.0/16").check("http://169.254.169.254/")
    assert policy("169.254.0.0/16").check("http://169.254.10.10/")
    assert policy("169.254.169.254").check("http://169.254.169.254/")


def test_from_setting():
    p = OutboundPolicy.from_setting(" 127.0.0.1 , ,localhost,10.0.0.0/8 ")
    assert p.addresses and p.hosts == {"localhost"} and p.networks
    assert OutboundPolicy.from_setting(None).hosts == set()
