"""Member-domain HTTP schemas (used by views only), one module per concern."""
