"""legacy order history: orders batches (kind, parent) and the legacy orders they bring

Revision ID: 7825a6829b75
Revises: 255bfaba7c66
Create Date: 2026-12-07 04:56:31.158035
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text  # noqa: F401 - autogenerate renders JSONB(astext_type=Text())

from sqlalchemy.dialects import postgresql

import scrm.db

revision: str = "7825a6829b75"
down_revision: str | Sequence[str] | None = "255bfaba7c66"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "legacy_orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("members_batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("legacy_member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_ref", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", scrm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "items", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_legacy_orders_amount_fen")),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["import_batches.id"], name=op.f("fk_legacy_orders_batch_id_import_batches")
        ),
        sa.ForeignKeyConstraint(
            ["legacy_member_id"],
            ["legacy_members.id"],
            name=op.f("fk_legacy_orders_legacy_member_id_legacy_members"),
        ),
        sa.ForeignKeyConstraint(
            ["members_batch_id"], ["import_batches.id"], name=op.f("fk_legacy_orders_members_batch_id_import_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legacy_orders")),
        sa.UniqueConstraint("members_batch_id", "order_ref", name=op.f("uq_legacy_orders_members_batch_id_order_ref")),
    )
    op.create_index("ix_legacy_orders_batch_id", "legacy_orders", ["batch_id"], unique=False)
    op.create_index("ix_legacy_orders_legacy_member_id", "legacy_orders", ["legacy_member_id"], unique=False)
    # Batch mode so the embedded SQLite database can change the constraints too (it rebuilds the table).
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default=sa.text("'members'"), nullable=False)
        )
        batch_op.add_column(sa.Column("parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_import_batches_content_hash_dry_run"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_import_batches_content_hash_dry_run_kind"), ["content_hash", "dry_run", "kind"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_import_batches_parent_id_import_batches"), "import_batches", ["parent_id"], ["id"]
        )
        batch_op.create_check_constraint(batch_op.f("ck_import_batches_kind"), "kind IN ('members', 'orders')")
        batch_op.create_check_constraint(
            batch_op.f("ck_import_batches_parent_id"), "(kind = 'orders') = (parent_id IS NOT NULL)"
        )


def downgrade() -> None:
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_import_batches_parent_id"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_import_batches_kind"), type_="check")
        batch_op.drop_constraint(batch_op.f("fk_import_batches_parent_id_import_batches"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_import_batches_content_hash_dry_run_kind"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_import_batches_content_hash_dry_run"), ["content_hash", "dry_run"]
        )
        batch_op.drop_column("parent_id")
        batch_op.drop_column("kind")
    op.drop_index("ix_legacy_orders_legacy_member_id", table_name="legacy_orders")
    op.drop_index("ix_legacy_orders_batch_id", table_name="legacy_orders")
    op.drop_table("legacy_orders")
