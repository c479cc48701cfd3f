"""`scrm legacy …`: import a legacy CRM file (or dry-run it) with a progress bar, and the bind pass."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click


def _app() -> Any:
    # The `scrm` group keeps its lazily built app on the root context (see scrm.cli.AppContext).
    return click.get_current_context().find_root().obj.app


@click.group()
def legacy() -> None:
    """Legacy CRM import and binding."""


def _load_mapping(path: str | None) -> dict[str, str] | None:
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read the mapping: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise click.ClickException('the mapping must be a JSON object {"<column header>": "<field>"}')
    return data


@legacy.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False), help='JSON {"<header>": "<field>"}')
@click.option("--dry-run", is_flag=True, help="Report what the import would do; write nothing")
@click.option("--chunk-rows", type=int, default=None, help="Rows per committed chunk [SCRM_LEGACY_CHUNK_ROWS]")
@click.option(
    "--orders-of",
    type=click.IntRange(1, 2**63 - 1),
    default=None,
    metavar="BATCH",
    help="FILE is the order history of members batch BATCH (linked by member number or phone)",
)
def import_command(
    file: str, mapping: str | None, dry_run: bool, chunk_rows: int | None, orders_of: int | None
) -> None:
    """Import FILE (CSV or XLSX). Re-running a file resumes it, or adds nothing when it is done."""
    from member.legacy.runner import run_import
    from member.legacy.services.batches import batch_counts, get_batch, open_batch
    from member.legacy.services.dryrun import dry_run as dry_run_batch
    from member.legacy.services.policy import BindPolicy
    from scrm.errors import DomainError

    app = _app()
    scrm = app.extensions["scrm"]
    overrides = _load_mapping(mapping)
    rows_per_chunk = chunk_rows or scrm.config.legacy_chunk_rows
    path = Path(file).resolve()
    with app.app_context():
        policy = BindPolicy.from_config(scrm.config)
        try:
            if dry_run:
                session = scrm.db.session()
                try:
                    handle = open_batch(session, path=path, filename=path.name, mapping=overrides, dry_run=True)
                    report = dry_run_batch(session, handle.batch.id, chunk_rows=rows_per_chunk, policy=policy)
                finally:
                    session.rollback()
                    session.close()
                _print_report("dry run", report)
                return
            with scrm.db.transaction() as session:
                handle = open_batch(session, path=path, filename=path.name, mapping=overrides, orders_of=orders_of)
                batch_id, total, done = handle.batch.id, handle.batch.progress_total, handle.batch.progress_done
                already = handle.batch.status == "done"
            if already:
                click.echo(f"batch {batch_id}: this file was imported already; nothing added", err=True)
            started = time.monotonic()
            rows_seen = [0]
            with click.progressbar(length=max(total, 1), label="importing", show_eta=True, file=None) as bar:
                bar.update(done)

                def advance(chunk: Any, outcome: Any) -> None:
                    rows_seen[0] += outcome.rows
                    rate = rows_seen[0] / max(time.monotonic() - started, 1e-6)
                    bar.label = f"importing {rows_seen[0]:,} rows, {rate:,.0f} rows/s"
                    bar.update(chunk.progress - bar.pos)

                result = run_import(scrm.db, batch_id, chunk_rows=rows_per_chunk, policy=policy, on_chunk=advance)
            with scrm.db.transaction() as session:
                batch = get_batch(session, batch_id)
                if batch.kind == "orders":
                    report = {**batch_counts(batch), "orders_carried_to_bound_members": batch.bound_count}
                else:
                    report = {
                        **batch_counts(batch),
                        "inserted": batch.inserted_count,
                        "bound": batch.bound_count,
                        "conflicts_queued": batch.conflict_count,
                        "bind_pass": result.bind_pass,
                    }
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
    elapsed = time.monotonic() - started
    click.echo(f"batch {batch_id}: {result.rows:,} rows this run in {elapsed:.1f} s", err=True)
    _print_report(f"batch {batch_id}", report)


def _print_report(title: str, report: dict[str, Any]) -> None:
    click.echo(f"{title}:")
    for key, value in report.items():
        click.echo(f"  {key}: {json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value}")
