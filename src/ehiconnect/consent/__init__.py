"""Stage 1: the SMART standalone launch that turns a patient's sign-in into a connection."""
