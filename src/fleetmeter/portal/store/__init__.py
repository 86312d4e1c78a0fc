"""Storage: SQLAlchemy models, engines, Alembic migrations and tenant-scoped queries."""
