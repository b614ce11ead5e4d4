"""Tell the patient (email over SMTP) and/or the customer's app (callback URL) how collection went.

Templates are data: `TEMPLATES` maps an outcome to a subject and a body (`string.Template`), and
`FAILURE_TEXTS` says in plain words what each failure reason means for the patient. Messages hold
no health data: only the health system, a count and what to do next.
"""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from string import Template
from typing import Any

import httpx

from ehiconnect import __version__
from ehiconnect.tracker.settings import NotifySettings


@dataclass(frozen=True)
class MessageTemplate:
    subject: str
    body: str


TEMPLATES: dict[str, MessageTemplate] = {
    "collection_finished": MessageTemplate(
        subject="Your records from $health_system are ready",
        body=(
            "Hello,\n\nWe received your health records from $health_system "
            "($total_resources items). You can close this message; nothing else is needed.\n"
        ),
    ),
    "collection_failed": MessageTemplate(
        subject="We could not collect your records from $health_system",
        body="Hello,\n\nWe could not collect your health records from $health_system. "
        "$what_to_do\n",
    ),
}

FAILURE_TEXTS: dict[str, str] = {
    "token_refresh_failure": "Your sign-in expired; please connect your account again.",
    "scope_patient_missing": "The permission to read your record was not granted; please connect "
    "again and allow access to your health record.",
    "resource_patient_failure": "Your health system did not return your record; we will try again.",
    "resource_invalid_content": "Your health system returned data we could not read; our support "
    "team has been told.",
    "timeout": "Your health system took too long to answer; we will try again later.",
    "suppressed_please_contact": "Please contact our support team.",
}
CALLBACK_TIMEOUT_SECONDS = 15.0
DEFAULT_FAILURE_TEXT = "Our support team has been told and will follow up."


@dataclass(frozen=True)
class Notice:
    outcome: str  # a key of TEMPLATES
    job_id: str
    org_connection_id: str
    external_id: str | None
    health_system: str
    total_resources: int = 0
    failure_reason: str | None = None


def render(notice: Notice, templates: dict[str, MessageTemplate] = TEMPLATES) -> tuple[str, str]:
    """Subject and body for the notice; an unknown placeholder is left as written."""
    template = templates[notice.outcome]
    values = {
        "health_system": notice.health_system,
        "total_resources": str(notice.total_resources),
        "what_to_do": FAILURE_TEXTS.get(notice.failure_reason or "", DEFAULT_FAILURE_TEXT),
    }
    subject = Template(template.subject).safe_substitute(values)
    body = Template(template.body).safe_substitute(values)
    return subject, body


def callback_payload(notice: Notice) -> dict[str, Any]:
    return {
        "type": f"tracker.{notice.outcome}",
        "job_id": notice.job_id,
        "org_connection_id": notice.org_connection_id,
        "external_id": notice.external_id,
        "total_resources": notice.total_resources,
        "failure_reason": notice.failure_reason,
    }


async def send_email(settings: NotifySettings, to: str, subject: str, body: str) -> None:
    if not settings.smtp_host:
        raise ValueError("tracker.notify.smtp_host is not set; email cannot be sent")
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    await asyncio.to_thread(_deliver, settings, message)


def _deliver(settings: NotifySettings, message: EmailMessage) -> None:
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user and settings.smtp_password is not None:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        smtp.send_message(message)


async def post_callback(url: str, notice: Notice) -> None:
    async with httpx.AsyncClient(
        timeout=CALLBACK_TIMEOUT_SECONDS,
        headers={"User-Agent": f"ehiconnect-tracker/{__version__}"},
    ) as client:
        response = await client.post(url, json=callback_payload(notice))
    if not response.is_success:
        raise RuntimeError(f"callback {url} answered {response.status_code}; it is retried")


async def deliver(settings: NotifySettings, notice: Notice, email_to: str | None) -> list[str]:
    """Send the notice on every configured channel; the channels used."""
    used: list[str] = []
    if email_to and settings.smtp_host:
        subject, body = render(notice)
        await send_email(settings, email_to, subject, body)
        used.append("email")
    if settings.callback_url:
        await post_callback(settings.callback_url, notice)
        used.append("callback")
    return used
