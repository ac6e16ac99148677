"""Alembic's script directory: env.py, the revision template and versions/ (one file per revision)."""
