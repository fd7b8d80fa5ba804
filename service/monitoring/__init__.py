"""Prometheus metrics: what the service counts as it works, and what the database holds.

`instruments` are counted by the code that does the work (in every process;
under gunicorn summed over processes through PROMETHEUS_MULTIPROC_DIR);
`database_state` is read from the database when Prometheus scrapes `/metrics`.
"""
