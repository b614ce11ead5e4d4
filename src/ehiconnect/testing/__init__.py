"""Helpers shipped for tests and demos: in-memory fakes of small ports, and loopback servers."""
