"""Alembic environment of the services' tables: run on the connection :func:`upgrade` hands over.

The version table has a name of its own, so these migrations live beside any other Alembic history
the same database may carry (Airflow's or MLflow's, when they share a server).
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "loanstress_services_version"

context.configure(connection=context.config.attributes["connection"], version_table=VERSION_TABLE,
                  render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
