"""The shipping address a checkout sends the marketplaces, its checks, and remembering it on the
shopper's profile for the next checkout."""

from __future__ import annotations

from dataclasses import dataclass

from commerce.countries import is_shipping_country
from commerce.models import User


@dataclass(frozen=True, slots=True)
class ShippingDetails:
    """Where the marketplaces ship to; saved to the shopper's profile for next time."""

    name: str
    line1: str
    city: str
    country: str
    postal_code: str = ""
    line2: str = ""
    phone: str = ""

    def errors(self) -> dict[str, str]:
        """Field name -> problem, empty when the address is usable."""
        problems: dict[str, str] = {}
        for name, label, limit in (
            ("name", "Name", 160),
            ("line1", "Address", 200),
            ("city", "City", 120),
        ):
            value = getattr(self, name).strip()
            if not value:
                problems[name] = f"{label} is required."
            elif len(value) > limit:
                problems[name] = f"{label} is at most {limit} characters."
        if not is_shipping_country(self.country):
            problems["country"] = "Choose a country from the list."
        if len(self.postal_code) > 20:
            problems["postal_code"] = "Postal code is at most 20 characters."
        if len(self.line2) > 200:
            problems["line2"] = "Address line 2 is at most 200 characters."
        if len(self.phone) > 32:
            problems["phone"] = "Phone is at most 32 characters."
        return problems

    @classmethod
    def from_profile(cls, user: User) -> ShippingDetails:
        """The address saved on the profile (empty fields when none was saved)."""
        return cls(
            name=user.ship_name or user.full_name,
            line1=user.ship_line1 or "",
            line2=user.ship_line2 or "",
            city=user.ship_city or "",
            postal_code=user.ship_postal_code or "",
            country=user.ship_country or "",
            phone=user.phone_number or "",
        )


def save_shipping_to_profile(user: User, shipping: ShippingDetails) -> None:
    """Remember the address on the profile, so the next checkout is pre-filled."""
    user.ship_name = shipping.name.strip()
    user.ship_line1 = shipping.line1.strip()
    user.ship_line2 = shipping.line2.strip() or None
    user.ship_city = shipping.city.strip()
    user.ship_postal_code = shipping.postal_code.strip() or None
    user.ship_country = shipping.country.strip().upper()
    if shipping.phone.strip():
        user.phone_number = shipping.phone.strip()
