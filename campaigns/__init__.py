"""Audiences, per-segment treatments, holdouts and conversion reports."""
