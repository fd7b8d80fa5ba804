"""Webhook deliveries: signatures, senders, the stored deliveries and their mapping into records."""
