"""The site's templates escape their output through storefront.templating.escape_output: the
same bytes as Jinja's own autoescaping (markupsafe.escape), checked value by value, construct by
construct, and on whole pages rendered both ways."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jinja2.compiler import CodeGenerator
from markupsafe import Markup, escape

from commerce.models import Product
from storefront.templating import OutputEscapingCodeGenerator, escape_output
from tests.storefront.sample_catalog import SCRIPT_TITLE, SONY_GROUP


class Shouting:
    def __str__(self) -> str:
        return "<b>\"loud\" & 'clear'</b>"


class Trusted:
    def __html__(self) -> str:
        return "<em>already safe</em>"


class MarkupSubclass(Markup):
    """Markup by inheritance: trusted as it is."""


class StrSubclass(str):
    """Text by inheritance: escaped like any str."""


OUTPUT_VALUES = [
    "",
    "plain text",
    "<script>alert('x')</script> & \"quoted\"",
    "&amp; already an entity",
    "naïve café — 東京 ✓",
    "lone \ud800 surrogate",
    StrSubclass("<i>a str subclass</i>"),
    Markup("<b>markup</b>"),
    MarkupSubclass("<b>subclass</b>"),
    Trusted(),
    Shouting(),
    0,
    -12,
    10**30,
    3.5,
    True,
    None,
    ("<tuple>",),
]


@pytest.mark.parametrize("value", OUTPUT_VALUES, ids=repr)
def test_escape_output_gives_markupsafe_s_bytes(value: object) -> None:
    assert escape_output(value) == str(escape(value))


CONSTRUCTS = {
    "variable": "{{ value }}",
    "safe filter": "{{ value|safe }}",
    "escape filter": "{{ value|e }}",
    "string concatenation": "{{ value ~ '<&>' }}",
    "markup concatenation": "{{ trusted ~ value }}",
    "set block": "{% set block %}<p>{{ value }}</p>{% endset %}{{ block }}{{ block }}",
    "macro": "{% macro m(x) %}<i>{{ x }}</i>{% endmacro %}{{ m(value) }}{{ m(m(value)) }}",
    "call block": "{% macro wrap() %}<div>{{ caller() }}</div>{% endmacro %}"
    "{% call wrap() %}{{ value }}{% endcall %}",
    "autoescape off": "{% autoescape false %}{{ value }}{% endautoescape %}{{ value }}",
    "filters": "{{ value|upper }}{{ [value, value]|join(', ') }}{{ value|default('x') }}",
    "format": "{{ '%s<br>'|format(value) }}{{ '<p>{}</p>'.format(value) }}",
    "loop": "{% for v in [value, trusted, 3] %}[{{ v }}]{% endfor %}",
    "attribute": '<a title="{{ value }}" href="/?q={{ value|urlencode }}">x</a>',
}


@pytest.mark.parametrize("construct", sorted(CONSTRUCTS))
def test_every_template_construct_renders_as_jinja_s_own_escaping_does(
    app: Flask, construct: str
) -> None:
    source = CONSTRUCTS[construct]
    context: dict[str, Any] = {
        "value": "<script>\"x\" & 'y'</script>",
        "trusted": Markup("<hr>"),
    }
    ours = app.jinja_env.from_string(source).render(context)

    stock = app.jinja_env.overlay()
    stock.code_generator_class = CodeGenerator
    assert stock.from_string(source).render(context) == ours
    assert ("<script>" in ours) == (construct in ("autoescape off", "safe filter"))


def test_the_site_compiles_output_through_escape_output(app: Flask) -> None:
    assert app.jinja_env.code_generator_class is OutputEscapingCodeGenerator
    compiled = app.jinja_env.compile("<p>{{ value }}</p>", raw=True)
    assert "escape_output(" in compiled
    assert re.search(r"(?<![_\w])escape\(", compiled) is None


@pytest.fixture
def app_config_overrides(meili_server: str, sample_index: str) -> dict[str, Any]:
    return {"MEILI_URL": meili_server, "MEILI_INDEX": sample_index, "FX_CACHE_SECONDS": 0}


PAGES = (
    "/",
    "/search?q=sony",
    "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%27%26",
    "/search?q=tv&sort=price_asc&max_price=2000&marketplace=bazaar",
    "/search?category=Headphones&available=1&min_rating=4&page=2",
    "/search?q=" + SCRIPT_TITLE[:20],
    f"/product/{SONY_GROUP}",
    "/stores",
    "/login",
    "/api/search?q=sony&html=1",
)
CSRF_TOKEN = re.compile(r'(name="csrf_token" value="|name="csrf-token" content=")[^"]*"')


def _pages(client: FlaskClient) -> dict[str, str]:
    pages = {}
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
        pages[path] = CSRF_TOKEN.sub(r'\1"', response.get_data(as_text=True))
    return pages


class _ChartClock(datetime):
    """The product page's price chart runs its lines to `now`: both renders of the page must see
    the same moment, or a slow run draws two different charts."""

    moment = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return cls.moment if tz is not None else cls.moment.replace(tzinfo=None)


def test_pages_are_byte_identical_to_jinja_s_own_escaping(
    app: Flask,
    client: FlaskClient,
    catalog: dict[str, Product],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("storefront.catalog.routes.datetime", _ChartClock)
    ours = _pages(client)

    app.jinja_env.code_generator_class = CodeGenerator
    app.jinja_env.cache.clear()  # compile every template again, the stock way
    stock = _pages(client)

    assert ours == stock
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;&amp;" in ours[PAGES[2]]
