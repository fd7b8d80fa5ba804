"""The HTTP server: gunicorn's gthread worker, hardened for clients on the open network.

`customer-metrics serve` runs it (service/gunicorn_conf.py names the worker class).
In production a buffering reverse proxy stands in front (deploy/nginx/); this
package makes gunicorn safe on its own too: a request must arrive in time, an
early answer never lies about keep-alive, and every answer is problem+json.
"""
