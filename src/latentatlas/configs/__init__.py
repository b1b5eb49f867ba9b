"""Packaged run configs (the demo)."""
