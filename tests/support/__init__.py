"""Code shared by the test tiers: database set-up, API servers, job tasks used by tests."""
