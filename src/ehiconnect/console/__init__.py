"""The platform's web console under `/console` (operators and customers).

`ehiconnect.consolekit` is the part every console shares (accounts, sessions, CSRF, layout) and
imports no platform feature; `ehiconnect.console.app.mount_console` adds the platform's pages.
"""
