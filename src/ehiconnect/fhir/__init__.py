"""Pure FHIR building blocks: NDJSON streaming, references, attachments, resource-type lists,
capability parsing, inline Binary resources and OperationOutcome lines.

Nothing here performs HTTP or database I/O; the crawler and exporter are the shells around it.
"""
