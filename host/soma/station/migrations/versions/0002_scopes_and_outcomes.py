"""Every run with its status (ok, failed, refused, started), its scope (a full or a partial
bench) and its reason in words; a run that finishes a started one (a flash) names it.

Runs recorded before this revision get the status their outcome meant; their benches get
the scope "unknown" (a partial bench was stored like a full one then).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("status", sa.String(16), nullable=False, server_default="ok"))
    op.add_column("runs", sa.Column("scope", sa.String(16), nullable=False, server_default="full"))
    op.add_column("runs", sa.Column("reason", sa.Text, nullable=False, server_default=""))
    op.add_column("runs", sa.Column("follows", sa.Integer, nullable=True))
    op.execute("UPDATE runs SET status = 'failed' WHERE outcome IN ('rolled_back', 'fail')")
    op.execute("UPDATE runs SET scope = 'unknown' WHERE kind = 'bench'")
    op.create_index("ix_runs_unit_stage", "runs", ["serial", "kind", "scope", "id"])
    op.create_index("ix_runs_follows", "runs", ["follows"])
