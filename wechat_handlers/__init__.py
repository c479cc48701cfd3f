"""Inbound WeChat official-account callbacks: verify, decrypt, deduplicate, dispatch."""
