"""Alembic migrations of the services' tables (loan amendments, simulation requests) in the results database."""
