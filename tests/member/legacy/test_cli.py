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


def test_cli_imports_order_history_on_sqlite(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'scrm.db'}"
    migrate.upgrade(url)
    monkeypatch.setenv("SCRM_DATABASE_URL", url)
    monkeypatch.setenv("SCRM_LOG_JSON", "0")
    members = tmp_path / "members.csv"
    members.write_text("会员编号,手机号\nA1,13800138000\nA2,13700137000\nA3,13700137000\n", encoding="utf-8")
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "订单号,手机号,金额,下单时间\nO1,13800138000,9.90,2024-01-02\nO2,13700137000,1,2024-01-02\n"
        "O1,13800138000,9.91,2024-01-02\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    first = runner.invoke(main, ["legacy", "import", str(members)])
    assert first.exit_code == 0, first.output
    early = runner.invoke(main, ["legacy", "import", str(orders), "--orders-of", "7"])
    assert early.exit_code != 0
    assert "no import batch 7" in early.output

    result = runner.invoke(main, ["legacy", "import", str(orders), "--orders-of", "1"])
    assert result.exit_code == 0, result.output
    assert "valid: 1" in result.output
    assert '"duplicate_order_id": 1' in result.output
    assert '"unknown_or_shared_phone": 1' in result.output
    assert "orders_carried_to_bound_members: 0" in result.output
    again = runner.invoke(main, ["legacy", "import", str(orders), "--orders-of", "1"])
    assert "nothing added" in again.output
