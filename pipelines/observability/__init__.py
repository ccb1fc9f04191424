"""Run metrics for Prometheus and structured logs: what operators watch a deployment with."""
