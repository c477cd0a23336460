"""Chaos under load: see __main__.py."""
