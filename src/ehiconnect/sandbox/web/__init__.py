"""HTTP handlers of the sandbox (Starlette). Pure decisions live in the modules above."""
