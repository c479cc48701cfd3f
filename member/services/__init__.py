"""Member-domain writes, one module per concern; callers import the module they need."""
