"""Shipping countries are ISO 3166-1 countries only, with the names shoppers know."""

from __future__ import annotations

import pytest

from commerce.checkout import ShippingDetails
from commerce.countries import is_shipping_country, shipping_countries
from storefront.checkout.forms import country_choices

NOT_COUNTRIES = {
    "EU": "European Union",
    "EZ": "Eurozone",
    "XA": "Pseudo-Accents",
    "XB": "Pseudo-Bidi",
    "UN": "United Nations",
    "ZZ": "Unknown Region",
    "QO": "Outlying Oceania",
}


def test_the_list_is_iso_3166_1_without_cldr_regions_or_pseudo_locales() -> None:
    countries = dict(shipping_countries())

    assert len(countries) == 249
    assert not set(NOT_COUNTRIES) & set(countries)
    assert not set(NOT_COUNTRIES.values()) & set(countries.values())
    assert countries["US"] == "United States" and countries["GB"] == "United Kingdom"
    assert countries["KE"] == "Kenya" and countries["AX"] == "Åland Islands"


def test_the_list_is_sorted_by_name_as_people_read_it() -> None:
    names = [name for _code, name in shipping_countries()]

    assert names[:3] == ["Afghanistan", "Åland Islands", "Albania"]
    assert names.index("Côte d’Ivoire") < names.index("Croatia")
    assert [choice.value for choice in country_choices()] == [
        code for code, _name in shipping_countries()
    ]


@pytest.mark.parametrize("code", [*NOT_COUNTRIES, "", "G", "GBR", "12"])
def test_an_address_in_no_country_is_refused(code: str) -> None:
    shipping = ShippingDetails(name="Ada", line1="12 Analytical Way", city="London", country=code)

    assert not is_shipping_country(code)
    assert shipping.errors() == {"country": "Choose a country from the list."}


def test_a_country_code_in_any_case_is_accepted() -> None:
    assert is_shipping_country("gb") and is_shipping_country(" KE ")
    assert ShippingDetails(name="Ada", line1="1 Way", city="Nairobi", country="ke").errors() == {}
