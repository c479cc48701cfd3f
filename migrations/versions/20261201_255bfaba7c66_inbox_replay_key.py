"""inbox replay key: the replay cache kept with the message it let in

Revision ID: 255bfaba7c66
Revises: fba8f8635cf5
Create Date: 2026-12-01 21:46:53.863890
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '255bfaba7c66'
down_revision: str | Sequence[str] | None = "fba8f8635cf5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode so the embedded SQLite database can add the unique constraint too (it rebuilds the table).
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replay_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("body_digest", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_inbox_appid_replay_key"), ["appid", "replay_key"])


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_inbox_appid_replay_key"), type_="unique")
        batch_op.drop_column("body_digest")
        batch_op.drop_column("replay_key")
