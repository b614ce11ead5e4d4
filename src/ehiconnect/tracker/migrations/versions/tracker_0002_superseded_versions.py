"""The FHIR store's history keeps superseded contents only.

Until now every content was written twice on arrival: as the current row
(`tracker_fhir_resources`) and as a history row (`tracker_fhir_versions`). From this revision a
content enters the history when a newer one replaces it, so a first load writes each resource
once. History rows that repeat their resource's current content are removed here; every distinct
content is still kept, in one table or the other.

Downgrading copies each current content back into the history, as the earlier writer expects.

Revision ID: tracker_0002
Revises: tracker_0001
"""

from __future__ import annotations

from alembic import op

revision = "tracker_0002"
down_revision = "tracker_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM tracker_fhir_versions v USING tracker_fhir_resources cur "
        "WHERE v.resource_type = cur.resource_type AND v.resource_id = cur.resource_id "
        "AND v.content_sha256 = cur.content_sha256"
    )


def downgrade() -> None:
    op.execute(
        "INSERT INTO tracker_fhir_versions "
        "(resource_type, resource_id, content_sha256, body, recorded_at) "
        "SELECT resource_type, resource_id, content_sha256, body, updated_at "
        "FROM tracker_fhir_resources ON CONFLICT DO NOTHING"
    )
