"""Phone number helpers shared by services, selectors and views: E.164 parsing and masking."""

from __future__ import annotations

import phonenumbers

from scrm.errors import InvalidInput


def to_e164(raw: str, *, default_region: str = "CN") -> str:
    """A phone number in E.164, or InvalidInput."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise InvalidInput("not a valid phone number", code="phone_invalid", details={"fields": {"phone": ["invalid"]}})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str | None) -> str | None:
    """+8613812341234 -> 138****1234 (national part: first 3 and last 4 digits)."""
    if not phone:
        return None
    try:
        national = str(phonenumbers.parse(phone).national_number)
    except phonenumbers.NumberParseException:
        national = phone.lstrip("+")
    if len(national) <= 7:
        return "*" * len(national)
    return f"{national[:3]}{'*' * (len(national) - 7)}{national[-4:]}"
