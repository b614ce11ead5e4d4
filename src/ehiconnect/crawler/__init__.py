"""Crawl planning and policies for collecting a patient's records from a FHIR server.

The modules here are pure (no HTTP, no sleeping): `plan` decides what to fetch, `policy` decides
when to retry and how many requests may run at once, `quirks` holds per-vendor differences as data.
"""
