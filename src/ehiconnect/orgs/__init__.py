"""Organizations (the platform's customers), their key pairs and their registered origins."""
