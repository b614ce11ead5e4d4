"""What a webhook endpoint URL may look like (the pure check used by the API and the CLI)."""

from __future__ import annotations

import pytest

from ehiconnect.webhooks.urls import MAX_URL_LENGTH, InvalidWebhookUrl, normalize_webhook_url


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://hooks.example.com/in?x=1", "https://hooks.example.com/in?x=1"),
        ("  https://hooks.example.com/in  ", "https://hooks.example.com/in"),
        ("http://127.0.0.1:8080/hooks", "http://127.0.0.1:8080/hooks"),
        ("http://localhost:8000/hook", "http://localhost:8000/hook"),
        ("HTTPS://Hooks.Example.COM/In", "https://hooks.example.com/In"),
        # Internationalized names are stored in their ASCII form, the one that is resolved.
        ("https://bücher.example/hook", "https://xn--bcher-kva.example/hook"),
        ("https://hooks.example.com/é", "https://hooks.example.com/%C3%A9"),
        ("http://[0:0::1]:8443/h", "http://[::1]:8443/h"),
    ],
)
def test_accepted_urls_are_stored_in_one_form(url: str, stored: str) -> None:
    assert normalize_webhook_url(url) == stored


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "empty"),
        ("https://hooks.example.com/\x00", "U+0000"),
        ("https://hooks.example.com/a\x1fb", "U+001F"),
        ("https://hooks.example.com/\x7f", "U+007F"),
        ("https://hooks.example.com/a\x85b", "U+0085"),
        ("https://hooks.exa mple.com/", "whitespace"),
        ("https://hooks.example.com/a\u00a0b", "whitespace"),
        ("https://hooks.example.com\\@evil.example/", "backslash"),
        ("ftp://hooks.example.com/", "https://"),
        ("javascript:alert(1)", "https://"),
        ("hooks.example.com/in", "https://"),
        ("//hooks.example.com/in", "https://"),
        ("https:///in", "no host"),
        ("https://user:pass@hooks.example.com/", "user:password@"),
        ("https://hooks.example.com/#frag", "#fragment"),
        ("https://hooks.example.com:99999/", "port 99999"),
        ("https://hooks.example.com:0/", "port 0"),
        ("https://hooks.example.com:abc/", "port"),
        ("http://[::1/", "cannot be parsed"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://☃.example/", "IDNA"),
        ("http://-bad.example/", "not a valid host name"),
        ("http://a..example/", "not a valid host name"),
        ("http://%6c%6fcalhost/", "not a valid host name"),
    ],
)
def test_refused_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(InvalidWebhookUrl) as refused:
        normalize_webhook_url(url)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    "host",
    ["0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "2130706433", "127.1", "1.2.3.4.5", "10.0.0.010"],
)
def test_numeric_hosts_other_than_four_decimal_numbers_are_refused(host: str) -> None:
    # The system resolver reads each of these as an IPv4 address (0177.0.0.1 is 127.0.0.1), other
    # parsers as a name: a URL two parsers disagree on must not get past the address check.
    with pytest.raises(InvalidWebhookUrl) as refused:
        normalize_webhook_url(f"http://{host}/hook")
    assert "IPv4" in str(refused.value)


def test_urls_longer_than_the_limit_are_refused_without_echoing_them() -> None:
    long_url = "https://hooks.example.com/" + "a" * 70_000
    with pytest.raises(InvalidWebhookUrl) as refused:
        normalize_webhook_url(long_url)
    message = str(refused.value)
    assert f"at most {MAX_URL_LENGTH}" in message
    assert "aaaa" not in message
    fits = "https://hooks.example.com/" + "a" * (MAX_URL_LENGTH - 26)
    assert normalize_webhook_url(fits) == fits


def test_refusals_do_not_quote_the_path_or_query() -> None:
    # A receiver URL may carry a token in its path or query; the error names the problem only.
    with pytest.raises(InvalidWebhookUrl) as refused:
        normalize_webhook_url("https://user:pass@hooks.example.com/t/SECRET?token=SECRET")
    assert "SECRET" not in str(refused.value)
