"""The assistant's conversation memory on the wire: the previous answer's understood request
(assistant.follow_up.Conversation), signed with SECRET_KEY and handed to the shopper's next
request as a hidden form field, or as "context" in the JSON API.

Signed, not stored: a guest needs no session row, nothing grows server-side, and each answer
replaces the token (it holds one step of the conversation, bounded in size). A token that was
changed, is too long or too old is refused with a clear error, never half-read.
"""

from __future__ import annotations

from typing import Final

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from assistant.follow_up import Conversation, ConversationUnreadable, read_conversation

CONVERSATION_SALT: Final = "onecart.assistant.conversation"
# A follow-up refines a request asked a little while ago, not yesterday's (prices move).
MAX_AGE_SECONDS: Final = 2 * 60 * 60
# A signed conversation is about 1 KB (compressed); nothing this version writes is longer.
MAX_TOKEN_CHARS: Final = 6000

CHANGED_MESSAGE: Final = (
    "The earlier answer this request follows could not be read: it was changed. "
    "Please ask your request in full."
)
EXPIRED_MESSAGE: Final = (
    "The earlier answer this request follows is more than 2 hours old. "
    "Please ask your request in full."
)


class ConversationRefused(ValueError):
    """A conversation token that cannot be used; the message is for the shopper."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=CONVERSATION_SALT)


def conversation_token(conversation: Conversation) -> str:
    """The conversation, signed and URL-safe, for the next request's form or JSON body."""
    token = _serializer().dumps(conversation.to_json())
    return token if isinstance(token, str) else token.decode("ascii")


def read_conversation_token(token: str) -> Conversation:
    """The conversation a token carries; ConversationRefused when it was changed, is too long
    or too old, or holds no conversation this version wrote."""
    if len(token) > MAX_TOKEN_CHARS:
        raise ConversationRefused(CHANGED_MESSAGE)
    try:
        data = _serializer().loads(token, max_age=MAX_AGE_SECONDS)
    except SignatureExpired as expired:
        raise ConversationRefused(EXPIRED_MESSAGE) from expired
    except BadSignature as changed:
        raise ConversationRefused(CHANGED_MESSAGE) from changed
    try:
        return read_conversation(data)
    except ConversationUnreadable as unreadable:
        raise ConversationRefused(CHANGED_MESSAGE) from unreadable
