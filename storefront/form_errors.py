"""A rejected form's answer: a service's validation errors (field -> messages) put onto the
WTForms form, and the status of the page re-rendered with them."""

from __future__ import annotations

from collections.abc import Mapping

from flask_wtf import FlaskForm

# Every form re-rendered with its errors answers 422 Unprocessable Content (the request was
# understood, its answers were not acceptable), as the checkout always has.
REJECTED_FORM_STATUS = 422


def form_page(form: FlaskForm, html: str) -> tuple[str, int]:
    """A form's page: 200 for the form shown blank (GET), 422 for a submitted one shown again
    with its errors."""
    return html, REJECTED_FORM_STATUS if form.is_submitted() else 200


def attach_service_errors(
    form: FlaskForm, errors: Mapping[str, list[str]], *, aliases: Mapping[str, str] | None = None
) -> None:
    """Show each message beside its field; messages for fields the form lacks go on top.

    `aliases` maps a service's field name to the form's (e.g. "email" -> "contact_email").
    """
    for name, messages in errors.items():
        field = getattr(form, (aliases or {}).get(name, name), None)
        if field is None or not hasattr(field, "errors"):
            form.form_errors.extend(messages)
            continue
        field.errors = [*field.errors, *messages]
