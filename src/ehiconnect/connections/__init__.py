"""Org connections: a patient's authorization at a health system, owned by one organization."""
