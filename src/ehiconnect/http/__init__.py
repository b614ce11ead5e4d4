"""The one outbound HTTP seam: SSRF guard, address pinning, capped response reads."""
