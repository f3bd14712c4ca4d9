"""Text in the site's stylesheets is readable: every text colour meets WCAG 2.1 AA's contrast
minimum (4.5:1 for normal text) against the background it is drawn on.

Checked from the stylesheets themselves: a rule that sets both a colour and a background is
checked as that pair (badges, counters, notices); a rule that sets only a colour is checked on
the two backgrounds text sits on (cards and inputs are white, the page is --page). White text
is left to the first check (it only ever sits on a background a rule gives it), and decorative
glyphs hidden from assistive technology need 3:1, the minimum for graphics (WCAG 1.4.11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from onecart.settings import REPO_ROOT

STYLESHEETS = sorted((REPO_ROOT / "storefront").rglob("*.css"))
TEXT_MINIMUM = 4.5
GRAPHICS_MINIMUM = 3.0
WHITE = "#ffffff"

_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_DECLARATION = re.compile(r"([\w-]+)\s*:\s*([^;]+)")
_HEX = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def _declarations(body: str) -> dict[str, str]:
    return {name.strip(): value.strip() for name, value in _DECLARATION.findall(body)}


def _rules(path: Path) -> list[tuple[str, dict[str, str]]]:
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
    return [(selector.strip(), _declarations(body)) for selector, body in _RULE.findall(text)]


def _custom_properties() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in STYLESHEETS:
        for selector, declarations in _rules(path):
            if selector == ":root":
                found.update({k: v for k, v in declarations.items() if k.startswith("--")})
    return found


ROOT = _custom_properties()


def _colour(value: str | None) -> str | None:
    """A plain colour as #rrggbb (a var() of :root resolved), or None for anything else."""
    if value is None:
        return None
    value = value.strip()
    variable = re.fullmatch(r"var\((--[\w-]+)\)", value)
    if variable:
        value = ROOT.get(variable.group(1), "")
    if value in ("#fff", "white"):
        return WHITE
    if not _HEX.fullmatch(value):
        return None
    digits = value[1:]
    if len(digits) == 3:
        digits = "".join(2 * digit for digit in digits)
    return f"#{digits.lower()}"


def _luminance(colour: str) -> float:
    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: str, second: str) -> float:
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _everywhere() -> list[tuple[str, str, dict[str, str]]]:
    return [
        (path.relative_to(REPO_ROOT).as_posix(), selector, declarations)
        for path in STYLESHEETS
        for selector, declarations in _rules(path)
    ]


def test_the_contrast_formula_matches_wcag() -> None:
    assert contrast("#000000", WHITE) == pytest.approx(21.0)
    assert contrast("#767676", WHITE) == pytest.approx(4.54, abs=0.01)


def test_text_on_a_background_its_rule_sets_meets_aa() -> None:
    failures = []
    checked = 0
    for path, selector, declarations in _everywhere():
        text = _colour(declarations.get("color"))
        background = _colour(declarations.get("background") or declarations.get("background-color"))
        if text is None or background is None:
            continue
        checked += 1
        ratio = contrast(text, background)
        if ratio < TEXT_MINIMUM:
            failures.append(f"{path} {selector}: {text} on {background} is {ratio:.2f}:1")
    assert checked > 20  # the badges, counters, notices and buttons are all found
    assert failures == []


def test_text_colours_meet_aa_on_the_page_and_on_cards() -> None:
    page = _colour("var(--page)")
    assert page is not None
    failures = []
    for path, selector, declarations in _everywhere():
        text = _colour(declarations.get("color"))
        if text is None or text == WHITE or "background" in declarations:
            continue
        minimum = GRAPHICS_MINIMUM if "aria-hidden" in selector else TEXT_MINIMUM
        ratio = min(contrast(text, WHITE), contrast(text, page))
        if ratio < minimum:
            failures.append(f"{path} {selector}: {text} is {ratio:.2f}:1 (needs {minimum})")
    assert failures == []
