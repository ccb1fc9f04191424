"""One way to open the SQL database the loan store, results store and local metrics sink share."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa


def open_engine(url: str) -> sa.Engine:
    """A SQLAlchemy engine for ``url``; an embedded SQLite file gets its folder created first."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url)
