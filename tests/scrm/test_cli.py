"""The `scrm` command line against the embedded SQLite default."""

from __future__ import annotations

from click.testing import CliRunner

from scrm.cli import main


def test_db_upgrade_staff_create_demo_and_outbox_status(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SCRM_LOG_JSON", "0")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    created = runner.invoke(main, ["staff", "create", "ops", "--role", "analyst", "--password", "long enough pw"])
    assert created.exit_code == 0, created.output
    assert "created" in created.output
    duplicate = runner.invoke(main, ["staff", "create", "ops", "--password", "long enough pw"])
    assert duplicate.exit_code != 0
    assert "taken" in duplicate.output
    first = runner.invoke(main, ["demo"])
    assert "password" in first.output
    assert "already seeded" in runner.invoke(main, ["demo"]).output
    assert runner.invoke(main, ["outbox", "status"]).output.strip() == "outbox empty"
    assert runner.invoke(main, ["sweeper", "--once"]).exit_code == 0


def test_bad_configuration_is_a_clean_error(monkeypatch):
    monkeypatch.setenv("SCRM_ENV", "prod")
    result = CliRunner().invoke(main, ["outbox", "status"])
    assert result.exit_code != 0
    assert "SCRM_SECRET_KEY" in result.output
