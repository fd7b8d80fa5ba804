"""The background work: what runs off the request path, in one loop.

The loop (`service.background.loop`) runs the periodic tasks of
`service.background.tasks.TASKS` (mapping webhook deliveries, pruning past
retention, refreshing purchase histories) and the one-off jobs of the job table
(`service.background.jobs`, `service.job_queue`). It runs in a process of its own
(`customer-metrics worker`, `python -m service.background`; under gunicorn the
master keeps one running, `service.background.supervisor`) or, with
WEBHOOK_MAPPER=thread, in a thread of each web process
(`service.background.thread`).
"""
