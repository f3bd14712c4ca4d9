"""The assistant route exists now so links work; the assistant itself has its own issue."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("assistant", __name__, template_folder="templates")


@bp.get("/assistant")
def assistant() -> str:
    """Say honestly that the AI assistant is not here yet, and point at search meanwhile."""
    return render_template("assistant/assistant.html")
