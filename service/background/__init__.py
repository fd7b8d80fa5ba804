"""The background worker: the periodic work of the service, in one process beside the web.

`customer-metrics worker` runs every task of `service.background.tasks.TASKS`
(`service.background.loop`); under gunicorn the master keeps one such process
running (`service.background.supervisor`).
"""
