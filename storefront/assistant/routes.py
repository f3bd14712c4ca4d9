"""Assistant views: thin translations between HTTP and assistant.service.

POST /assistant answers a request (rate-limited per shopper and per IP, CSRF-protected) and, for
a signed-in shopper, stores it in the history; POST /assistant/prompts/<id>/rerun asks one of
the shopper's own earlier requests again. Answers render on the page (no redirect), so a guest's
answer needs no storage; adding a suggestion to the cart comes back to GET /assistant?q=<the
request>, which answers it again (rate-limited, not stored again).

A script (a JSON body `{"prompt": "..."}`, or Accept: application/json) gets `{"answer": ...}`
and its refusals in the site's JSON error shape, with the same statuses (400, 422, 429, 503).

Every answer carries its conversation, signed (the form's hidden "context" field; "context" in
the JSON answer): sent back with the next request, a follow-up ("cheaper", "in blue", "show me
more") refines that answer's request (assistant.follow_up). A changed or stale one is a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict

from assistant.answer import AssistantAnswer, Suggestion
from assistant.config import get_assistant_settings
from assistant.embeddings import model_status
from assistant.history import prompt_of_user, recent_prompts, record_prompt
from assistant.service import answer_prompt
from commerce import catalog
from commerce.models import User
from commerce.rate_limit import RateLimit, SlidingWindowLimiter, redis_client_from_url
from search_index.client import SearchUnavailable
from storefront.assistant.conversation import (
    ConversationRefused,
    conversation_token,
    read_conversation_token,
)
from storefront.assistant.forms import EMPTY_MESSAGE, AssistantForm, RerunForm
from storefront.cart.forms import AddToCartForm
from storefront.catalog.routes import index_missing_message
from storefront.catalog.shopper import (
    disabled_marketplaces,
    display_currency,
    fx_table,
    index_uid,
    search_client,
)
from storefront.database import db_session
from storefront.errors.routes import error_response, wants_json
from storefront.form_errors import REJECTED_FORM_STATUS
from storefront.limits import client_address

bp = Blueprint("assistant", __name__, template_folder="templates")

DEFAULT_LIMIT_PER_USER = 30
DEFAULT_LIMIT_PER_IP = 60
DEFAULT_LIMIT_WINDOW_SECONDS = 600
SHOWN_FIRST = 5
_LIMITER_KEY = "assistant_limiter"

EXAMPLES = (
    "a gift for a runner under 40 dollars",
    "something to keep my coffee hot",
    "cheapest 65-inch TV with good reviews, not from ShopWave",
    "wireless earbuds between 10k and 20k naira",
)


# A rendered page with its status and headers, or a JSON reply for a script.
_Reply = tuple[str, int, dict[str, str]] | Response


@dataclass(frozen=True, slots=True)
class SuggestionView:
    """A suggestion with what the page needs to sell it: an add-to-cart form when the offer is
    in OneCart's catalog and can be bought."""

    suggestion: Suggestion
    cart_form: AddToCartForm | None


def _signed_in_user() -> User | None:
    return current_user._get_current_object() if current_user.is_authenticated else None  # type: ignore[attr-defined]


def _limiter() -> tuple[SlidingWindowLimiter, RateLimit, RateLimit]:
    """The assistant's Redis limiter and rules, built once per app from its config."""
    cached = current_app.extensions.get(_LIMITER_KEY)
    if cached is None:
        config = current_app.config
        window = int(config.get("ASSISTANT_LIMIT_WINDOW_SECONDS", DEFAULT_LIMIT_WINDOW_SECONDS))
        limiter = SlidingWindowLimiter(
            redis_client_from_url(config["REDIS_URL"]), prefix=config["RATE_LIMIT_PREFIX"]
        )
        per_user = RateLimit(
            "assistant-user",
            int(config.get("ASSISTANT_LIMIT_PER_USER", DEFAULT_LIMIT_PER_USER)),
            window,
        )
        per_ip = RateLimit(
            "assistant-ip", int(config.get("ASSISTANT_LIMIT_PER_IP", DEFAULT_LIMIT_PER_IP)), window
        )
        cached = (limiter, per_user, per_ip)
        current_app.extensions[_LIMITER_KEY] = cached
    return cached


def _model_package() -> str:
    return str(
        current_app.config.get("ASSISTANT_MODEL_PACKAGE") or get_assistant_settings().model_package
    )


def _assistant_settings() -> Any:
    settings = get_assistant_settings()
    overrides: dict[str, Any] = {"model_package": _model_package()}
    if "ASSISTANT_EMBEDDINGS" in current_app.config:
        overrides["embeddings"] = str(current_app.config["ASSISTANT_EMBEDDINGS"])
    return settings.model_copy(update=overrides)


def _suggestion_views(answer: AssistantAnswer) -> list[SuggestionView]:
    views = []
    # Back to this answer after adding one of its offers (GET /assistant?q=...), not to an
    # empty assistant: the shopper may want a second suggestion of the same answer.
    back = url_for("assistant.assistant", q=answer.prompt)
    for suggestion in answer.suggestions:
        product = catalog.find_offer(db_session(), suggestion.marketplace, suggestion.external_id)
        form = None
        if product is not None and product.is_purchasable:
            form = AddToCartForm(
                formdata=None,
                product_id=str(product.id),
                quantity=answer.intent.quantity,
                next=back,
            )
        views.append(SuggestionView(suggestion=suggestion, cart_form=form))
    return views


def _page(
    form: AssistantForm,
    *,
    answer: AssistantAnswer | None = None,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> _Reply:
    if wants_json() and (error is not None or form.errors):
        # A script's refusal in the site's JSON error shape, with the form's own message.
        messages = [message for errors in form.errors.values() for message in errors]
        return error_response(status, error or messages[0], headers)
    token = None
    if answer is not None and answer.conversation is not None:
        # The next request from this page follows on from this answer, not the one before.
        token = conversation_token(answer.conversation)
        form.context.data = token
    if wants_json() and answer is not None:
        return _answer_json(answer, token)
    user = _signed_in_user()
    history = recent_prompts(db_session(), user) if user is not None else []
    status_of_model = model_status(_model_package())
    page = render_template(
        "assistant/assistant.html",
        form=form,
        answer=answer,
        suggestions=_suggestion_views(answer) if answer is not None else [],
        shown_first=SHOWN_FIRST,
        error=error,
        history=history,
        rerun_form=RerunForm(),
        examples=EXAMPLES,
        model_status=status_of_model,
    )
    return page, status, headers or {}


def _answer_json(answer: AssistantAnswer, context: str | None) -> Response:
    """The answer for a script: its stored form (money in integer minor units), whether it
    found anything, its prose, each suggestion's marketplace name and product page, and the
    signed conversation to send back with a follow-up ("context")."""
    body = answer.to_json()
    body.update(prompt=answer.prompt, found=answer.found, prose=answer.prose, context=context)
    for stored, suggestion in zip(body["suggestions"], answer.suggestions, strict=True):
        stored["marketplace_name"] = suggestion.marketplace_name
        stored["product_page"] = url_for("catalog.product", group_id=suggestion.group_id)
    return jsonify({"answer": body})


def _answer(form: AssistantForm, prompt_text: str, *, record: bool = True) -> _Reply:
    """Read the conversation it follows, rate-limit, answer, store (signed in, when
    `record`), render."""
    conversation = None
    if form.context.data:
        try:
            conversation = read_conversation_token(form.context.data)
        except ConversationRefused as refused:
            form.context.data = ""  # the next request starts afresh
            return _page(form, error=str(refused), status=400)
    user = _signed_in_user()
    limiter, per_user, per_ip = _limiter()
    checks = [(per_ip, client_address())]
    if user is not None:
        checks.append((per_user, str(user.id)))
    # Checked and counted in one atomic step, so concurrent prompts cannot all slip through.
    decision = limiter.acquire(checks)
    if not decision.allowed:
        minutes = max(1, (decision.retry_after + 59) // 60)
        return _page(
            form,
            error=f"You have asked the assistant many times in a short while. Please try again in "
            f"{minutes} minute{'s' if minutes != 1 else ''}.",
            status=429,
            headers={"Retry-After": str(decision.retry_after)},
        )
    try:
        answer = answer_prompt(
            prompt_text,
            client=search_client(),
            index_uid=index_uid(),
            fx=fx_table(),
            display_currency=display_currency(),
            settings=_assistant_settings(),
            withheld_marketplaces=disabled_marketplaces(),
            conversation=conversation,
        )
    except SearchUnavailable as unavailable:
        message = (
            index_missing_message()
            if unavailable.reason == "index_missing"
            else "Search is temporarily unavailable, so the assistant cannot look for products "
            "right now. Please try again shortly."
        )
        return _page(form, error=message, status=503, headers={"Retry-After": "30"})
    if user is not None and record:
        record_prompt(db_session(), user, answer)
        db_session().commit()
    return _page(form, answer=answer)


def _posted_form() -> AssistantForm | Response:
    """The request box as posted. A JSON body (which Flask-WTF would read as a mapping of
    strings, failing on anything else) must be an object whose "prompt" is text."""
    if not request.is_json:
        return AssistantForm()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error_response(
            400, 'Send a JSON object with the request as “prompt”: {"prompt": "a mug under $20"}.'
        )
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        return error_response(
            REJECTED_FORM_STATUS, '“prompt” must be text, for example "a mug under $20".'
        )
    context = body.get("context")
    if context is not None and not isinstance(context, str):
        return error_response(
            REJECTED_FORM_STATUS, "“context” must be the text an earlier answer gave as “context”."
        )
    return AssistantForm(formdata=MultiDict({"prompt": prompt or "", "context": context or ""}))


@bp.get("/assistant")
def assistant() -> _Reply:
    """The request box, example requests and (signed in) the shopper's history.

    With `q` (where adding a suggestion to the cart comes back to), that request is answered
    again, rate-limited as any answer and not added to the history a second time."""
    asked = request.args.get("q", "")
    if not asked.strip() and wants_json():
        return error_response(REJECTED_FORM_STATUS, f"{EMPTY_MESSAGE} Ask with ?q=…")
    if not asked.strip():
        return _page(AssistantForm(formdata=None))
    follows = request.args.get("context", "")
    form = AssistantForm(
        formdata=MultiDict({"prompt": asked, "context": follows}), meta={"csrf": False}
    )
    if not form.validate():
        return _page(form, status=REJECTED_FORM_STATUS)
    return _answer(form, form.prompt.data or "", record=False)


@bp.post("/assistant")
def ask() -> _Reply:
    """Answer a request in plain language with products from every marketplace."""
    form = _posted_form()
    if isinstance(form, Response):
        return form
    if not form.validate():
        return _page(form, status=REJECTED_FORM_STATUS)
    return _answer(form, form.prompt.data or "")


@bp.post("/assistant/prompts/<int:prompt_id>/rerun")
@login_required
def rerun(prompt_id: int) -> _Reply:
    """Ask one of the shopper's earlier requests again, with today's catalog and prices."""
    user = _signed_in_user()
    rerun_form = RerunForm()
    if user is None or not rerun_form.validate():
        abort(400)
    earlier = prompt_of_user(db_session(), user, prompt_id)
    if earlier is None:
        abort(404)
    form = AssistantForm(formdata=None, prompt=earlier.prompt_text)
    return _answer(form, earlier.prompt_text)
