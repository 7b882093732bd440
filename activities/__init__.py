"""Thin Temporal activities: one port call each, errors classified for the workflow."""
