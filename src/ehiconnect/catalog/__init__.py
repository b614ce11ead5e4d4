"""The catalog of health systems: brands → portals → endpoints, searchable by patients."""
