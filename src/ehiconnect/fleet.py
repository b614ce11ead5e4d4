"""Settings every process of a fleet must share, checked when a process starts.

Many `serve` and `worker` processes on several hosts share one PostgreSQL. Some settings must be
equal on all of them, or the fleet fails in ways that show up far from their cause (a callback
landing on another host answered 500 because that host sealed with its own vault key):

- `vault.keys`: recorded as a check value per key id (HMAC-SHA256 of a fixed label under the key,
  never the key). A process holding a superset of the recorded keys is fine and adds its new keys
  to the record (rotation is done by ADDING a key). A key that differs under the same id, or a
  recorded key a process lacks, refuses the start, unless that key is retired: no stored secret
  names it and no other API or worker is running.
- `exports.storage`: backend plus bucket and prefix (S3) or directory (local).
- `api.public_base_url`: links in webhooks and OAuth callbacks are built from it.

The first process records each fingerprint; later ones compare theirs. For the last two, a
different value replaces the record when no other API or worker is running (the whole fleet was
stopped and restarted with new settings); otherwise the start is refused. API and worker
processes check all three; the CLI only the vault keys (it seals secrets, but serves no links).
Everything happens in one transaction under an advisory lock, so simultaneous starters agree.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.db.database import Database
from ehiconnect.db.fleet_state import (
    lock_fleet_settings,
    other_fleet_processes,
    record_fingerprint,
    recorded_fingerprints,
)
from ehiconnect.db.pools import FLEET_ROLES, ProcessRole
from ehiconnect.rekey import SEALED_KINDS
from ehiconnect.settings import Settings
from ehiconnect.vault import TokenCipher

log = logging.getLogger(__name__)

VAULT = "vault.keys"
STORAGE = "exports.storage"
PUBLIC_BASE_URL = "api.public_base_url"


class FleetSettingsMismatch(Exception):
    """This process's settings differ from the ones the fleet runs with; it must not start."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "this process's settings differ from the other processes' (recorded in the "
            "fleet_settings table); fix them and start again:\n- " + "\n- ".join(problems)
        )


@dataclass(frozen=True)
class Verdict:
    """What to do about one setting: a fingerprint to record, a problem, a note to log."""

    record: dict[str, Any] | None = None
    problem: str | None = None
    note: str | None = None


def judge_vault_keys(
    recorded: Mapping[str, str] | None,
    mine: Mapping[str, str],
    *,
    in_use: set[str],
    others_running: bool,
    source: str,
) -> Verdict:
    """Compare key check values (kid → check) with the recorded ones."""
    if recorded is None:
        return Verdict(record={"checks": dict(mine)})
    hint = _key_source_hint(source)
    differing = sorted(kid for kid in recorded if kid in mine and mine[kid] != recorded[kid])
    if differing:
        return Verdict(
            problem=f"{VAULT}: key id {differing[0]!r} names a different key here than on the "
            f"other processes. Give every process the same keys (EHICONNECT_VAULT__KEYS__<id>, "
            f"from your secret manager).{hint}"
        )
    missing = sorted(kid for kid in recorded if kid not in mine)
    needed = [kid for kid in missing if kid in in_use or others_running]
    if needed:
        kid = needed[0]
        why = (
            "secrets stored in the database are sealed with it, and this process could not "
            "open them"
            if kid in in_use
            else "other running processes hold it and may seal new secrets with it"
        )
        return Verdict(
            problem=f"{VAULT}: this process lacks key {kid!r}: {why}. Configure it here too "
            f"(EHICONNECT_VAULT__KEYS__{kid}, the same value as on the other processes). To "
            f"rotate, ADD a key and make it vault.active_kid; a key can be dropped once "
            f"`ehiconnect vault reencrypt` moved every secret off it and no process holding it "
            f"runs.{hint}"
        )
    merged = {kid: check for kid, check in recorded.items() if kid not in missing} | dict(mine)
    if merged == dict(recorded):
        return Verdict()
    added = sorted(set(mine) - set(recorded))
    note = ", ".join(
        part
        for part in (
            f"added {added}" if added else "",
            f"retired {missing} (no stored secret uses them)" if missing else "",
        )
        if part
    )
    return Verdict(record={"checks": merged}, note=f"fleet vault keys updated: {note}")


def judge_equal(
    setting: str,
    recorded: Mapping[str, Any] | None,
    mine: Mapping[str, Any],
    *,
    others_running: bool,
    fix: str,
) -> Verdict:
    """A setting that must be equal everywhere: record it, accept it, or refuse the start."""
    if recorded is None:
        return Verdict(record=dict(mine))
    if dict(recorded) == dict(mine):
        return Verdict()
    if not others_running:
        return Verdict(
            record=dict(mine),
            note=f"{setting} changed from {_show(recorded)} to {_show(mine)} (no other API or "
            "worker process was running)",
        )
    return Verdict(
        problem=f"{setting} differs: this process has {_show(mine)}, the running processes "
        f"{_show(recorded)}. {fix}"
    )


def storage_fingerprint(settings: Settings) -> dict[str, Any]:
    exports = settings.exports
    if exports.storage == "s3":
        return {
            "backend": "s3",
            "bucket": exports.s3_bucket,
            "prefix": exports.s3_prefix.strip("/"),
        }
    directory = exports.local_dir or settings.data_dir / "exports"
    return {"backend": "local", "dir": str(directory.resolve())}


def public_base_url_fingerprint(settings: Settings) -> dict[str, Any]:
    return {"url": settings.public_base_url.rstrip("/")}


async def check_fleet_settings(
    database: Database, cipher: TokenCipher, settings: Settings, role: ProcessRole
) -> None:
    """Record or compare this process's shared settings; raises FleetSettingsMismatch."""
    async with database.transaction() as session:
        await lock_fleet_settings(session)
        recorded = await recorded_fingerprints(session)
        others_running = await other_fleet_processes(session) > 0
        vault_record = recorded.get(VAULT)
        recorded_checks: dict[str, str] | None = vault_record["checks"] if vault_record else None
        mine = cipher.key_checks()
        verdicts = {
            VAULT: judge_vault_keys(
                recorded_checks,
                mine,
                in_use=await kids_in_use(session, set(recorded_checks or {}) - set(mine)),
                others_running=others_running,
                source=cipher.source,
            )
        }
        if role in FLEET_ROLES:
            verdicts[STORAGE] = judge_equal(
                STORAGE,
                recorded.get(STORAGE),
                storage_fingerprint(settings),
                others_running=others_running,
                fix="Configure the same exports.storage, s3_bucket and s3_prefix (or local_dir "
                "on a filesystem every host shares) on every process: a file a worker writes "
                "must be readable by every API.",
            )
            verdicts[PUBLIC_BASE_URL] = judge_equal(
                PUBLIC_BASE_URL,
                recorded.get(PUBLIC_BASE_URL),
                public_base_url_fingerprint(settings),
                others_running=others_running,
                fix="Set EHICONNECT_API__PUBLIC_BASE_URL to the one URL browsers and customers "
                "reach, on every API and worker process (webhook links and OAuth callbacks are "
                "built from it).",
            )
        problems = [v.problem for v in verdicts.values() if v.problem]
        if problems:
            for problem in problems:
                log.error("fleet settings differ", extra={"problem": problem})
            raise FleetSettingsMismatch(problems)
        for name, verdict in verdicts.items():
            if verdict.record is not None:
                await record_fingerprint(session, name, verdict.record)
            if verdict.note:
                log.warning(verdict.note)


async def kids_in_use(session: AsyncSession, among: set[str]) -> set[str]:
    """Which of the vault key ids `among` sealed at least one stored secret."""
    used: set[str] = set()
    for kind in SEALED_KINDS:
        if not among - used:
            break
        column = getattr(kind.model, kind.kid)
        used.update(await session.scalars(select(column).where(column.in_(among)).distinct()))
    return used


def _key_source_hint(source: str) -> str:
    if source == "vault.keys":
        return ""
    return (
        f" This process read its keys from {source}, made because no vault.keys is configured: "
        "in a fleet, configure vault.keys (the first host's vault-keys.json holds the key the "
        "fleet uses) on every process."
    )


def _show(fingerprint: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in sorted(fingerprint.items()))
