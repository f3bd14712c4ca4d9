"""Putting a service's validation errors (field -> messages) onto a WTForms form."""

from __future__ import annotations

from collections.abc import Mapping

from flask_wtf import FlaskForm


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
