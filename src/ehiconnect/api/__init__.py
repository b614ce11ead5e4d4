"""The platform's HTTP API (ASGI, FastAPI)."""
