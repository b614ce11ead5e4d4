"""The `ehiconnect` command line."""
