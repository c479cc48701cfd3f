"""Member-domain jobs (thin entry points run by rq or in-process), one module per concern."""
