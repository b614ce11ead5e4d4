"""`ehiconnect sandbox` starts with no setup, prints systems and personas, and serves them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import typer
from typer.testing import CliRunner

from ehiconnect.cli.sandbox import register
from ehiconnect.testing.servers import free_port

LAUNCH = (
    "import sys, typer\n"
    "from ehiconnect.cli.sandbox import register\n"
    "app = typer.Typer()\n"
    "app.callback()(lambda: None)\n"
    "register(app)\n"
    "app()\n"
)


def test_register_adds_a_sandbox_command_with_host_and_port() -> None:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    result = CliRunner().invoke(app, ["sandbox", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output
    assert "--host" in result.output


def test_the_command_prints_systems_and_personas_then_serves() -> None:
    port = free_port()
    env = {**os.environ, "COLUMNS": "160"}
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        index = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and index is None:
            try:
                index = httpx.get(f"http://127.0.0.1:{port}/", timeout=1).json()
            except httpx.TransportError:
                time.sleep(0.1)
        assert index is not None, "the sandbox did not start"
        assert index["systems"][0]["fhir_base"] == f"http://127.0.0.1:{port}/harbor/fhir"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    for expected in (
        f"http://127.0.0.1:{port}/harbor/fhir",
        f"http://127.0.0.1:{port}/cedar/fhir",
        f"http://127.0.0.1:{port}/summit/fhir",
        "amy-sandbox",
        "hugo",
        "ehiconnect-confidential",
    ):
        assert expected in output
