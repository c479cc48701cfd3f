"""Member-domain HTTP routes, one module per audience (member centre, staff)."""
