"""Signed links (engine/links.py): per delivery, unforgeable, no open redirect."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartflow.engine.links import Links, LinkSettingsError

SECRET = "s3cret-for-tests-0123456789"
LINKS = Links("https://cf.shop.example", SECRET.encode())
CART = "https://shop.example/cart/1?utm=reminder&x=1"


def parts(url: str) -> tuple[str, str, str]:
    """(delivery, signature, target) of a click link."""
    split = urlsplit(url)
    _, kind, delivery, signature = split.path.split("/")
    assert kind == "l"
    return delivery, signature, parse_qs(split.query)["u"][0]


def test_a_click_link_names_its_delivery_and_target_and_checks_out() -> None:
    link = LINKS.click("d1", CART)
    assert link.startswith("https://cf.shop.example/l/d1/")
    delivery, signature, target = parts(link)
    assert (delivery, target) == ("d1", CART)
    assert LINKS.clicked("d1", signature, CART)


def test_an_altered_target_another_delivery_or_another_secret_does_not_check_out() -> None:
    _, signature, _ = parts(LINKS.click("d1", CART))
    assert not LINKS.clicked("d1", signature, "https://evil.example/")
    assert not LINKS.clicked("d2", signature, CART)
    other = Links("https://cf.shop.example", b"another-secret-0123456789")
    assert not other.clicked("d1", signature, CART)
    # ... and an unsubscribe signature is not a click's
    unsubscribe = LINKS.unsubscribe("d1").rsplit("/", 1)[1]
    assert LINKS.unsubscribed("d1", unsubscribe) and not LINKS.clicked("d1", unsubscribe, CART)
    assert not LINKS.unsubscribed("d1", signature)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "mailto:a@b.c", "/relative", "https://"])
def test_only_web_links_are_tracked_or_redirected_to(url: str) -> None:
    assert LINKS.click("d1", url) == url
    assert not LINKS.clicked("d1", "x" * 22, url)


@pytest.mark.parametrize(
    ("public_url", "secret", "says"),
    [
        ("https://cf.example", None, "both"),
        (None, SECRET, "both"),
        ("ftp://cf.example", SECRET, "http(s) URL"),
        ("https://cf.example", "short", "at least 16 bytes"),
    ],
)
def test_settings_that_cannot_sign_are_refused_without_showing_the_secret(
    public_url: str | None, secret: str | None, says: str
) -> None:
    with pytest.raises(LinkSettingsError) as raised:
        Links.from_settings(public_url, secret)
    assert says in str(raised.value)
    assert SECRET not in str(raised.value) and "short" not in str(raised.value)
    assert SECRET not in repr(LINKS) and "secret" not in repr(LINKS)  # not even its name


def test_no_settings_no_links() -> None:
    assert Links.from_settings("", "") is None


@given(delivery=st.text(min_size=1, max_size=40), url=st.text(max_size=60))
def test_a_signature_never_checks_out_for_anything_else(delivery: str, url: str) -> None:
    target = f"https://shop.example/{url}"
    _, signature, _ = parts(LINKS.click("d1", CART))
    assert LINKS.clicked(delivery, signature, target) == (delivery == "d1" and target == CART)
