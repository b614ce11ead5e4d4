"""EHI exports: assembling the NDJSON output and storing it (see `exports.storage`)."""
