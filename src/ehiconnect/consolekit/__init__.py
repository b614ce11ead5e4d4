"""What every console shares: accounts (argon2), sessions in PostgreSQL, CSRF, the page layout.

Public surface:

- `models`: `ConsoleUser`, `ConsoleSession` (one schema for every console, kept apart by realm)
- `accounts`: `add_user`, `sign_in` (with lockout), `unlock`, `list_users`, `LockoutPolicy`
- `sessions`: `open_session`, `load_session`, `close_session`, `SignedIn`, `SessionPolicy`
- `web`: `ConsoleKit` (templates, cookie, CSRF, login/logout/mode routes, error pages)

It imports no product feature, so the platform's console and the tracker's build on it alike.
"""
