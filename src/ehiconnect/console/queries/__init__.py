"""Read models of the console's pages: aggregate SQL over the features' tables, one query per
panel (never one per row), each bounded by a time range or a LIMIT."""
