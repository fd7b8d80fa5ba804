FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    BIND=0.0.0.0:8000
WORKDIR /app

COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY migrations ./migrations
# A normal install: the wheel carries the migrations (as service/migrations) and the
# /docs assets, so the sources are not needed at run time and are removed.
RUN pip install . && rm -rf /app/* && useradd --system --uid 10001 app
USER app

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
# Migrates, ensures BOOTSTRAP_API_KEY (or prints a first key), then becomes gunicorn
# (exec: gunicorn is PID 1 and receives the container's signals).
CMD ["customer-metrics", "serve"]
