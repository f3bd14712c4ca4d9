"""The countries a shipping address may name: ISO 3166-1 only.

The codes come from pycountry (Debian's iso-codes, which follows the ISO 3166 Maintenance
Agency), not from CLDR's territory list: CLDR also names regions and pseudo-locales ("European
Union", "Eurozone", "Pseudo-Accents", "United Nations", "Unknown Region", "Outlying Oceania"…)
that are no country a parcel can go to. The English names shoppers read are CLDR's (babel:
"United States", "South Korea"), falling back to ISO's common name.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import pycountry
from babel import Locale


def _sort_key(name: str) -> str:
    """Alphabetical as people expect it: "Åland Islands" among the A's, "Côte d’Ivoire" among
    the C's."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


@lru_cache(maxsize=1)
def shipping_countries() -> tuple[tuple[str, str], ...]:
    """(alpha-2 code, English name) of every ISO 3166-1 country, sorted by name."""
    cldr_names = Locale("en").territories
    countries = [
        (
            country.alpha_2,
            cldr_names.get(country.alpha_2)
            or getattr(country, "common_name", None)
            or country.name,
        )
        for country in pycountry.countries
    ]
    return tuple(sorted(countries, key=lambda item: (_sort_key(item[1]), item[0])))


@lru_cache(maxsize=1)
def _codes() -> frozenset[str]:
    return frozenset(code for code, _name in shipping_countries())


def is_shipping_country(code: str) -> bool:
    """Whether `code` (two letters, any case) is an ISO 3166-1 country."""
    return code.strip().upper() in _codes()


def country_name(code: str) -> str:
    """The English name shoppers chose the country by at checkout ("United Kingdom" for GB);
    an unknown code as it is."""
    wanted = code.strip().upper()
    return _names().get(wanted, wanted)


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    return dict(shipping_countries())
