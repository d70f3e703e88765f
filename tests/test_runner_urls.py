"""The runner builds an endpoint URL from a parsed origin, the path and the query, as httpx parses
it, and keeps no path or query (a member's number may be in either)."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings, strategies as st

from loyaltykit import http

_PATH_CHARS = "abcXYZ019-._~!$&'()*+,;=:@/%? #é\\[]{}<>`^|\""


def _same(built: str | httpx.URL, url: str) -> None:
    parsed = httpx.URL(url)
    built = httpx.URL(built) if isinstance(built, str) else built
    assert (built.scheme, built.raw_host, built.port, built.raw_path, built.query, built.fragment, str(built)) == (
        parsed.scheme, parsed.raw_host, parsed.port, parsed.raw_path, parsed.query, parsed.fragment, str(parsed))


@settings(max_examples=300)
@given(st.sampled_from(["https://engine.example", "http://127.0.0.1:8081", "https://api.example.com:443", "http://[::1]:9"]),
       st.text(_PATH_CHARS, max_size=30))
def test_a_url_is_the_url_httpx_parses(origin, path):
    url = f"{origin}/{path}"
    try:
        httpx.URL(url)
    except httpx.InvalidURL:
        return
    _same(http._target(url), url)


def test_plain_paths_take_the_parsed_origin_and_odd_ones_are_parsed_whole():
    assert http._SETS_PATH, "this httpx builds URLs from their parts"
    for plain in ("https://engine.example/v1/members/M-1/vouchers", "https://engine.example/q?q=SELECT+Id+FROM+X%27a%27&b=",
                  "https://engine.example/q?", "https://engine.example/programs/NTO%20Insider/members", "https://e.example/a%2fb%C3%A9"):
        assert isinstance(http._target(plain), httpx.URL)
        _same(http._target(plain), plain)
    for odd in ("https://engine.example/a/../b", "https://engine.example/a%zz", "https://engine.example/a%2", "https://engine.example/a b",
                "https://engine.example", "relative/path", "https://engine.example/a?b c", "https://engine.example/a?b#c"):
        assert http._target(odd) == odd  # left to httpx


def test_no_path_is_kept_between_requests():
    http._origin.cache_clear()
    for member in ("M-1", "M-2", "M-3"):
        http._target(f"https://engine.example/v1/members/{member}/vouchers")
        http._target(f"https://engine.example/v1/query?q=member%3D{member}")
    assert http._origin.cache_info().currsize == 1  # one origin, no member's path


@pytest.mark.parametrize("url", ["https://engine.example/v1/x", "http://127.0.0.1:9/a/b-c_d~e", "http://127.0.0.1:9/a?q=x%20y&z=1"])
def test_a_request_to_a_plain_path_is_sent_to_that_url(url):
    seen = []
    client = httpx.Client(transport=httpx.MockTransport(lambda r: seen.append(str(r.url)) or httpx.Response(200)))
    client.send(httpx.Request("GET", http._target(url)))
    assert seen == [url]


_query_values = st.one_of(st.text(max_size=12), st.integers(-10**9, 10**9), st.booleans(), st.none(),
                          st.lists(st.text(max_size=4), max_size=2))


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=8), _query_values, max_size=4))
def test_a_query_is_written_as_httpx_writes_it(params):
    assert http._query(params) == str(httpx.QueryParams(params))
