"""The task queue: procrastinate on the same PostgreSQL. Tasks stay thin and call services."""
