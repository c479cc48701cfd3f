"""Influence and value scoring, segments, rankings and KOL review."""
