"""A signed-in shopper's assistant history: storing answers and reading them back, always scoped
to the shopper who asked (another shopper's prompt id finds nothing)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from assistant.answer import AssistantAnswer
from commerce.assistant_models import PROMPT_TEXT_MAX_CHARS, AIPrompt
from commerce.models import User

HISTORY_LIMIT = 20


def record_prompt(session: Session, user: User, answer: AssistantAnswer) -> AIPrompt:
    """Add the request and its answer to the shopper's history (the caller commits)."""
    prompt = AIPrompt(
        user_id=user.id,
        prompt_text=answer.prompt[:PROMPT_TEXT_MAX_CHARS],
        response_json=answer.to_json(),
    )
    session.add(prompt)
    session.flush()
    return prompt


def recent_prompts(session: Session, user: User, limit: int = HISTORY_LIMIT) -> list[AIPrompt]:
    """The shopper's latest requests, newest first."""
    return list(
        session.scalars(
            sa.select(AIPrompt)
            .where(AIPrompt.user_id == user.id)
            .order_by(AIPrompt.created_at.desc(), AIPrompt.id.desc())
            .limit(limit)
        )
    )


def prompt_of_user(session: Session, user: User, prompt_id: int) -> AIPrompt | None:
    """One of the shopper's own requests, or None (also for other shoppers' ids)."""
    return session.scalar(
        sa.select(AIPrompt).where(AIPrompt.id == prompt_id, AIPrompt.user_id == user.id)
    )
