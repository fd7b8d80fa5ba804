"""customer-metrics: a REST service for a shop's customer metrics.

The WSGI app is built in `service.app` (the composition root); nothing here
imports Flask, so the core (ingestion, metrics, webhooks) loads without it.
"""
