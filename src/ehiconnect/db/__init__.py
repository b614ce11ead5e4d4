"""PostgreSQL access: the embedded server, the async engine, models and migrations."""
