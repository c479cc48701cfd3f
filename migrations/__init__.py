"""Alembic migrations for every scrm table."""
