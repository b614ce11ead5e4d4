"""Imports every model module so `Base.metadata` is complete (for Alembic and test set-up)."""

from ehiconnect.catalog import models as catalog_models
from ehiconnect.connections import models as connection_models
from ehiconnect.consent import models as consent_models
from ehiconnect.console import models as console_models
from ehiconnect.db import fleet_state, models, rate_limits
from ehiconnect.db.models import Base
from ehiconnect.exports import models as export_models
from ehiconnect.smart import client_keys as client_key_models
from ehiconnect.support import models as support_models
from ehiconnect.webhooks import models as webhook_models

__all__ = [
    "Base",
    "catalog_models",
    "client_key_models",
    "connection_models",
    "consent_models",
    "console_models",
    "export_models",
    "fleet_state",
    "models",
    "rate_limits",
    "support_models",
    "webhook_models",
]
