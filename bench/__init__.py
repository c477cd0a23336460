"""Gateway against direct Kafka, side by side on the lab: ``python -m bench`` (see its --help)."""
