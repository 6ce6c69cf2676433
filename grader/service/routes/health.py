"""GET /api/health: public; says the database answers."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from grader import __version__

from ..deps import SessionDep
from ..schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(db: SessionDep) -> Health:
    db.execute(text("SELECT 1"))
    return Health(status="ok", database="ok", version=__version__)
