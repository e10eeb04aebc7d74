"""Who an anonymous client is: its connection's address, a forwarded header only from a trusted proxy."""

from __future__ import annotations

import time

import httpx
import msgspec
import pytest

from service.api.auth import anonymous_identity, client_address, trusted_networks
from service.settings import Settings
from tests.integration.conftest import served

pytestmark = pytest.mark.integration

MARKETS = "/v1/markets"


def _scope(peer: str, *headers: tuple[str, str]) -> dict:
    return {"client": (peer, 40000), "headers": [(name.encode(), value.encode()) for name, value in headers]}


def test_forwarded_headers_are_ignored_without_trusted_proxies() -> None:
    for headers in ([("x-forwarded-for", "1.2.3.4")], [("X-Forwarded-For", " 1.2.3.4 ")], [("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]):
        assert client_address(_scope("127.0.0.1", *headers), ()) == "127.0.0.1"


def test_behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() -> None:
    trusted = trusted_networks(["127.0.0.1", "10.0.0.0/8", "::1"])
    # The client forged "9.9.9.9"; the proxy appended the address it saw: that one counts.
    assert client_address(_scope("127.0.0.1", ("x-forwarded-for", "9.9.9.9, 1.2.3.4")), trusted) == "1.2.3.4"
    # Spacing, name case and split headers make no difference; proxies of the chain are skipped.
    assert client_address(_scope("10.1.1.1", ("X-FORWARDED-FOR", "9.9.9.9 ,1.2.3.4"), ("x-forwarded-for", " 10.0.0.7 ")), trusted) == "1.2.3.4"
    # A hop that is no address ends the walk at the last proxy seen.
    assert client_address(_scope("127.0.0.1", ("x-forwarded-for", "1.2.3.4, bogus")), trusted) == "127.0.0.1"
    assert client_address(_scope("::1", ("x-forwarded-for", "2001:db8::1")), trusted) == "2001:db8::1"
    # Without the header a trusted proxy is its own client; an untrusted peer is never rewritten.
    assert client_address(_scope("10.2.2.2"), trusted) == "10.2.2.2"
    assert client_address(_scope("192.0.2.1", ("x-forwarded-for", "1.2.3.4")), trusted) == "192.0.2.1"


def test_ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert anonymous_identity("2001:db8:1:2:aaaa::1") == anonymous_identity("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert anonymous_identity("2001:db8:1:3::1") != anonymous_identity("2001:db8:1:2::1")
    assert anonymous_identity("::ffff:192.0.2.1") == anonymous_identity("192.0.2.1") == "192.0.2.1"
    assert anonymous_identity("testclient") == "testclient"


def test_a_trusted_proxies_entry_that_is_no_address_is_refused() -> None:
    with pytest.raises(ValueError, match="LIQMAP_TRUSTED_PROXIES: 'proxy.example' is not an IP address"):
        trusted_networks(["10.0.0.0/8", "proxy.example"])
    assert Settings.from_env({"LIQMAP_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"}).trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert Settings.from_env({}).trusted_proxies == ()


def _forged(i: int) -> list[tuple[str, str]]:
    """Request headers claiming a new client each time, in every spelling a server might accept."""
    spellings = ["X-Forwarded-For", "x-forwarded-for", "X-FORWARDED-FOR", "x-Forwarded-for"]
    return [(spellings[i % len(spellings)], f"203.0.113.{i} ,  198.51.100.{i}"), ("X-Real-IP", f"192.0.2.{i}"), ("Forwarded", f"for=192.0.2.{i}")]


def _start_of_a_window() -> None:
    """Counts start again each minute: within 10 s of the next one, wait for it (the asking takes well under a second)."""
    into = time.time() % 60
    if into > 50:
        time.sleep(60 - into + 0.05)


def test_a_forged_forwarded_header_does_not_dodge_the_anonymous_limit(seeded: Settings) -> None:
    settings = msgspec.structs.replace(seeded, anonymous_limit_per_min=5)
    with served(settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        _start_of_a_window()
        statuses = [http.get(MARKETS, headers=_forged(i)).status_code for i in range(12)]
    assert statuses[:5] == [200] * 5
    assert set(statuses[5:]) == {429}, statuses


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_count(seeded: Settings) -> None:
    settings = msgspec.structs.replace(seeded, anonymous_limit_per_min=3, trusted_proxies=("127.0.0.1",))
    with served(settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        _start_of_a_window()
        first = [http.get(MARKETS, headers={"X-Forwarded-For": f"{forged}, 198.51.100.1"}) for forged in ("1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4")]
        other = http.get(MARKETS, headers={"x-forwarded-for": "198.51.100.2"})
    # The forged left-hand hops change nothing: all four are 198.51.100.1, limited at 3.
    assert [r.status_code for r in first] == [200, 200, 200, 429]
    assert other.status_code == 200 and other.headers["api-key-use-limit"] == "1"
