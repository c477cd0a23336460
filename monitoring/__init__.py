"""Monitoring built from code: the Grafana dashboard (monitoring/dashboard.py)."""
