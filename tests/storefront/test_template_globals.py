"""Templates read the site's Jinja globals through a read-only view of the environment's own dict
(storefront.templating.SiteJinjaEnvironment), with the ChainMap's behaviour where it matters."""

from __future__ import annotations

import pytest
from flask import Flask
from jinja2 import DictLoader

from storefront.templating import SiteJinjaEnvironment

TEMPLATES = {
    "greeting.html": "{{ greet(name) }}",
    "macros.html": "{% macro shout(text) %}{{ text|upper }}!{% endmacro %}",
    "page.html": '{% from "macros.html" import shout %}{{ shout(greet(name)) }}',
}


@pytest.fixture
def environment() -> SiteJinjaEnvironment:
    env = SiteJinjaEnvironment(Flask(__name__), loader=DictLoader(TEMPLATES), autoescape=True)
    env.globals["greet"] = lambda name: f"hello {name}"
    return env


def test_the_site_uses_the_environment(app: Flask) -> None:
    assert isinstance(app.jinja_env, SiteJinjaEnvironment)


def test_templates_render_with_globals_and_imported_macros(
    environment: SiteJinjaEnvironment,
) -> None:
    assert environment.get_template("greeting.html").render(name="<b>") == "hello &lt;b&gt;"
    assert environment.get_template("page.html").render(name="ada") == "HELLO ADA!"


def test_a_global_added_after_a_template_was_loaded_is_seen_by_it(
    environment: SiteJinjaEnvironment,
) -> None:
    template = environment.get_template("greeting.html")
    assert template.render(name="ada") == "hello ada"
    environment.globals["greet"] = lambda name: f"welcome {name}"
    assert template.render(name="ada") == "welcome ada"


def test_a_template_cannot_change_the_environment_globals(
    environment: SiteJinjaEnvironment,
) -> None:
    template = environment.get_template("greeting.html")
    with pytest.raises(TypeError):
        template.globals["greet"] = print  # type: ignore[index]
    assert environment.globals["greet"]("ada") == "hello ada"


def test_a_template_with_its_own_globals_keeps_them_to_itself(
    environment: SiteJinjaEnvironment,
) -> None:
    own = environment.get_template("page.html", globals={"greet": lambda name: f"hi {name}"})
    assert own.render(name="ada") == "HI ADA!"
    assert environment.get_template("greeting.html").render(name="ada") == "hello ada"
