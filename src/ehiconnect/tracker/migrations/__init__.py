"""The tracker's Alembic history (version table `tracker_alembic_version`); run it through
`ehiconnect.tracker.migrate.upgrade_tracker_database`."""
