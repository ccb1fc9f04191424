"""Loan amendments (with their audit trail) and simulation requests.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loan_amendments",
        sa.Column("amendment_id", sa.String(32), primary_key=True),
        sa.Column("loan_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("base_snapshot_id", sa.String(64), nullable=False),
        sa.Column("changes_json", sa.Text, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ingestion_id", sa.String(32)),
        sa.Column("snapshot_id", sa.String(64)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolution_note", sa.Text),
        # Optimistic concurrency: two writers of the same version of a loan cannot both commit.
        sa.UniqueConstraint("loan_id", "version", name="uq_loan_amendments_loan_version"),
    )
    op.create_index("ix_loan_amendments_status", "loan_amendments", ["status"])
    op.create_table(
        "simulation_requests",
        sa.Column("simulation_id", sa.String(40), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("scenario_description", sa.Text, nullable=False),
        sa.Column("interest_rate_scenario", sa.String(40), nullable=False),
        sa.Column("conf_json", sa.Text, nullable=False),
        sa.Column("launcher", sa.String(16), nullable=False),
        sa.Column("airflow_run_id", sa.String(250)),
        sa.Column("error", sa.Text),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("simulation_requests")
    op.drop_index("ix_loan_amendments_status", table_name="loan_amendments")
    op.drop_table("loan_amendments")
