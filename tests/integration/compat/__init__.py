"""Fasten Connect compatibility (#16): the parts of its published API beyond the core flow."""
