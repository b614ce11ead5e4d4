"""axe-core (the npm package) in the browser tests: no serious or critical accessibility violation.

    from tests.e2e.axe_support import axe_source, check_accessibility  # axe_source is a fixture

    await check_accessibility(page, axe_source, "overview")

`axe_source` runs `npm install axe-core` once per test session into the session's temp dir (no
node_modules in the repository); without npm, or without the network to fetch it, the tests that
use it are skipped with the reason. The script is evaluated in the page (DevTools evaluation is
not subject to the page's Content-Security-Policy, which allows only the console's own scripts).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Page

AXE_VERSION = "4"
BLOCKING = ("serious", "critical")


@pytest.fixture(scope="session")
def axe_source(tmp_path_factory: pytest.TempPathFactory) -> str:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: axe-core comes from npm (apt-get install -y npm)")
    folder = tmp_path_factory.mktemp("axe")
    done = subprocess.run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(folder),
            f"axe-core@{AXE_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    script = Path(folder) / "node_modules" / "axe-core" / "axe.min.js"
    if done.returncode != 0 or not script.exists():
        pytest.skip(f"npm install axe-core failed: {done.stderr.strip()[-300:]}")
    return script.read_text(encoding="utf-8")


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        targets = [", ".join(node["target"]) for node in violation["nodes"][:3]]
        lines.append(f"{violation['impact']}: {violation['id']} ({violation['help']}) at {targets}")
    return "\n".join(lines)


async def check_accessibility(page: Page, axe_source: str, where: str) -> None:
    """Run axe on the page as it is now; fail on a serious or critical violation."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(axe_source)
    result = await page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    blocking = [v for v in result["violations"] if v.get("impact") in BLOCKING]
    assert not blocking, f"axe-core on {where} ({page.url}):\n{describe(blocking)}"
