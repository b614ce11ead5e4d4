"""The platform's web console under `/console` (operators and customers).

`ehiconnect.console.kit` is the part every console shares (accounts, sessions, CSRF, layout) and
imports no platform feature; `ehiconnect.console.app.mount_console` adds the platform's pages.
This package's `__init__` stays empty of imports so the tracker can use the kit alone.
"""
