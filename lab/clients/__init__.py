"""Counted Kafka clients for the e2e tests and the soak: a producer/consumer-group load run in the lab's client
namespace (load.py), the client processes it starts (cluster_clients.py, run by path), and what each application
was told per message (outcomes.py)."""
