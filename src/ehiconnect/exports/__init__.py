"""EHI exports: a patient's record crawled, packaged into one NDJSON file, published and kept for
its retention. The feature reaches the process only through `ports.ExportPorts` (docs/exports.md,
Code map); the files go to the `ehiconnect.storage` port."""
