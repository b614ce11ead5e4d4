"""`ehiconnect vault ...`: rotate the key that seals tokens and secrets at rest."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ehiconnect.cli.common import console, err_console, load_settings, print_json, with_runtime
from ehiconnect.rekey import DEFAULT_BATCH_SIZE, RekeyReport, reencrypt_secrets
from ehiconnect.runtime import Runtime
from ehiconnect.vault import add_file_key

vault_app = typer.Typer(
    help="The vault keys sealing tokens and secrets: add a key, re-seal with it.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON")]


def register(app: typer.Typer) -> None:
    app.add_typer(vault_app, name="vault")


@vault_app.command("add-key")
def add_key(json: JsonFlag = False) -> None:
    """Add a new active key to the data directory's key file (embedded setups only).

    Restart every ehiconnect process so they know the key, then run `ehiconnect vault
    reencrypt`. Older keys stay in the file so existing rows keep opening.
    """
    settings = load_settings()
    if settings.vault.keys:
        err_console.print(
            "[red]error:[/red] the vault keys come from settings (vault.keys), not from a key "
            "file: add the new key where they are configured (e.g. your secret manager), make it "
            "vault.active_kid, restart, then run `ehiconnect vault reencrypt`"
        )
        raise typer.Exit(1)
    kid = add_file_key(settings.data_dir)
    if json:
        print_json({"active_kid": kid})
        return
    console.print(
        f"New active vault key [bold]{kid}[/bold] in {settings.data_dir / 'vault-keys.json'}"
    )
    console.print(
        "[yellow]Restart every ehiconnect process (API, workers) so they know the key, then run "
        "`ehiconnect vault reencrypt`.[/yellow]"
    )


@vault_app.command("reencrypt")
def reencrypt(
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Rows re-sealed per transaction")
    ] = DEFAULT_BATCH_SIZE,
    json: JsonFlag = False,
) -> None:
    """Re-seal every stored token and secret with the active key, in batches.

    Safe to interrupt and rerun: only rows not yet on the active key are touched.
    """

    def progress(kind: str, count: int) -> None:
        if not json:
            err_console.print(f"  {kind}: {count} re-sealed")

    async def work(runtime: Runtime) -> RekeyReport:
        return await reencrypt_secrets(
            runtime.database, runtime.cipher, batch_size=batch_size, on_batch=progress
        )

    report = with_runtime(load_settings(), work)
    if json:
        print_json(report.as_json())
    else:
        table = Table("secrets", "re-sealed", "unreadable", title=f"active key {report.active_kid}")
        for kind, count in report.resealed.items():
            table.add_row(kind, str(count), str(report.unreadable[kind]))
        console.print(table)
    if not report.complete:
        err_console.print(
            "[red]Some secrets could not be opened (their key is missing or the row was "
            "altered); they keep their old key. Restore the missing key and rerun.[/red]"
        )
        raise typer.Exit(2)
