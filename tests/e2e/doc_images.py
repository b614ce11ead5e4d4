"""Screenshots for the README, taken by the browser tests when asked to.

    EHICONNECT_UPDATE_DOC_IMAGES=1 .venv/bin/pytest tests/e2e/test_console*.py

writes docs/images/<name>.png from the page as the test sees it (so the README shows what the
tests check). Without the variable nothing in the repository changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Page

DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


async def doc_image(page: Page, name: str) -> None:
    if os.environ.get("EHICONNECT_UPDATE_DOC_IMAGES") != "1":
        return
    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(DOC_IMAGES / f"{name}.png"))
