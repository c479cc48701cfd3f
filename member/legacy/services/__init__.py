"""Legacy import and binding services: they take a Session, flush, and never commit."""
