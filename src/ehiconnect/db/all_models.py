"""Imports every model module so `Base.metadata` is complete (for Alembic and test set-up)."""

from ehiconnect.db import models
from ehiconnect.db.models import Base

__all__ = ["Base", "models"]
