"""The shopping assistant's table: every request a signed-in shopper made and what it answered.

`response_json` keeps the parsed intent, the suggested offers (document ids, prices, scores) and
which retrieval path answered (hybrid or keyword), so a past answer can be explained and a
request re-run. Rows belong to one shopper and are deleted with the account.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commerce.models import Base, User, utc_now

# The assistant's own limit (assistant.intent.MAX_PROMPT_CHARS) fits this column.
PROMPT_TEXT_MAX_CHARS = 500


class AIPrompt(Base):
    """One assistant request of a signed-in shopper (the seed's AIPrompt)."""

    __tablename__ = "ai_prompts"
    __table_args__ = (sa.Index("ix_ai_prompts_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    prompt_text: Mapped[str] = mapped_column(sa.String(PROMPT_TEXT_MAX_CHARS))
    response_json: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    user: Mapped[User] = relationship()

    @property
    def path(self) -> str:
        """Which retrieval answered ("hybrid" or "keyword"), from the stored response."""
        return str((self.response_json or {}).get("path") or "")

    @property
    def suggestion_count(self) -> int:
        """How many products the answer suggested."""
        return len((self.response_json or {}).get("suggestions") or [])

    def __repr__(self) -> str:
        return f"<AIPrompt {self.id} user={self.user_id}>"
