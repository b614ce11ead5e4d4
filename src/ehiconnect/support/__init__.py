"""Support requests: a patient's "I can't find my health system" from the widget (DESIGN §1)."""
