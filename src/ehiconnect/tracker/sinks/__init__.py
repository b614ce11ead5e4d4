"""Where ingested resources go. Each sink takes batches of parsed resources and is idempotent:
writing the same batch again adds nothing (see `base.Sink`)."""
