"""Where the demo's services listen, and whether those ports are free before anything starts."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ehiconnect.cli.demo_logic import DemoFailed, port_taken_message
from ehiconnect.settings import Settings
from ehiconnect.tracker.settings import TrackerSettings


@dataclass(frozen=True)
class Listener:
    role: str
    host: str
    port: int
    option: str
    env: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def listeners(settings: Settings, tracker: TrackerSettings) -> tuple[Listener, Listener, Listener]:
    """The sandbox, the platform API and the tracker, from their settings."""
    sandbox = urlsplit(settings.sandbox.base_url)
    return (
        Listener(
            "sandbox health systems",
            sandbox.hostname or "127.0.0.1",
            sandbox.port or 80,
            "--sandbox-port",
            "EHICONNECT_SANDBOX__BASE_URL",
        ),
        Listener(
            "platform API",
            settings.api.host,
            settings.api.port,
            "--api-port",
            "EHICONNECT_API__PORT",
        ),
        Listener(
            "tracker",
            tracker.host,
            tracker.port,
            "--tracker-port",
            "EHICONNECT_TRACKER__PORT",
        ),
    )


def set_ports(
    settings: Settings,
    tracker_settings: TrackerSettings,
    api: int | None,
    sandbox: int | None,
    tracker: int | None,
) -> None:
    """Apply the command's --…-port options over the settings."""
    if api:
        settings.api.port = api
    if sandbox:
        host = listeners(settings, tracker_settings)[0].host
        settings.sandbox.base_url = f"http://{host}:{sandbox}"
    if tracker:
        tracker_settings.port = tracker


def check_ports(wanted: tuple[Listener, ...]) -> None:
    """DemoFailed naming the first port that is taken (or wanted twice)."""
    seen: dict[int, str] = {}
    for listener in wanted:
        if listener.port in seen:
            raise DemoFailed(
                f"the {listener.role} and the {seen[listener.port]} would both use port "
                f"{listener.port}",
                f"give one of them another port ({listener.option})",
            )
        seen[listener.port] = listener.role
        if not _can_bind(listener.host, listener.port):
            raise port_taken_message(
                listener.role, listener.host, listener.port, listener.option, listener.env
            )


def _can_bind(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: a port whose old connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
