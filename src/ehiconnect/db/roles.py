"""What a process is, as PostgreSQL sees it: the `application_name` of every connection it opens.

Apart from the connection budget (`db.pools`, which reads the platform's settings) so that a
product with settings of its own, the tracker, can name its connections too.
"""

from __future__ import annotations

import enum


class ProcessRole(enum.StrEnum):
    API = "api"
    WORKER = "worker"
    TRACKER = "tracker"
    CLI = "cli"  # admin commands, the demo and tests (which may run jobs in-process)

    @property
    def application_name(self) -> str:
        return f"ehiconnect-{self.value}"
