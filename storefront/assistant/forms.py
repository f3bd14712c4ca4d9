"""Assistant forms: the request box and the re-run button (both POST with a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length

from assistant.intent import MAX_PROMPT_CHARS

EMPTY_MESSAGE = "Tell the assistant what you are looking for."
TOO_LONG_MESSAGE = f"Please keep your request under {MAX_PROMPT_CHARS} characters."


class AssistantForm(FlaskForm):
    """A request in plain language, up to MAX_PROMPT_CHARS characters."""

    prompt = TextAreaField(
        "What are you looking for?",
        validators=[
            DataRequired(message=EMPTY_MESSAGE),
            Length(max=MAX_PROMPT_CHARS, message=TOO_LONG_MESSAGE),
        ],
    )
    # The answer before, signed (storefront.assistant.conversation): a follow-up such as
    # "cheaper" refines it. Empty for a first request.
    context = HiddenField()


class RerunForm(FlaskForm):
    """Ask one of your earlier requests again (the prompt comes from the history row)."""
