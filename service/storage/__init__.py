"""Storage: the database models and sessions, and every query and write of the service, in domain terms (no HTTP)."""
