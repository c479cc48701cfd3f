"""`scrm legacy import`: dry run, import with progress and report, re-import adds nothing (embedded SQLite)."""

from __future__ import annotations

from click.testing import CliRunner

from scrm import migrate
from scrm.cli import main
from tests.member.legacy.files import legacy_rows, write_csv


def test_cli_dry_run_import_and_reimport(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'scrm.db'}"
    migrate.upgrade(url)
    monkeypatch.setenv("SCRM_DATABASE_URL", url)
    monkeypatch.setenv("SCRM_LOG_JSON", "0")
    rows, expected = legacy_rows(1200)
    path = write_csv(tmp_path / "crm.csv", rows, encoding="gb18030")
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"喜好": "custom:preference"}', encoding="utf-8")
    runner = CliRunner()

    dry = runner.invoke(main, ["legacy", "import", str(path), "--dry-run", "--mapping", str(mapping)])
    assert dry.exit_code == 0, dry.output
    assert f"valid: {expected.valid}" in dry.output
    assert "would_bind: 0" in dry.output

    first = runner.invoke(main, ["legacy", "import", str(path), "--mapping", str(mapping), "--chunk-rows", "500"])
    assert first.exit_code == 0, first.output
    assert f"inserted: {expected.valid}" in first.output
    assert f"invalid: {expected.invalid}" in first.output
    assert f"duplicate_phone_groups: {expected.duplicate_groups}" in first.output

    again = runner.invoke(main, ["legacy", "import", str(path), "--mapping", str(mapping)])
    assert again.exit_code == 0, again.output
    assert "nothing added" in again.output
    assert f"inserted: {expected.valid}" in again.output

    bad = runner.invoke(main, ["legacy", "import", str(path), "--mapping", str(tmp_path / "crm.csv")])
    assert bad.exit_code != 0
