"""The shipped nginx configuration (deploy/nginx/) is valid and is what docker-compose runs.

deploy/check_proxy.py runs it in front of a real gunicorn; this checks its syntax
with `nginx -t` wherever nginx is installed, and the compose file's shape always.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from deploy.check_proxy import TEMPLATE, nginx_command, write_config

TEMPLATE_MOUNT = (
    "./deploy/nginx/default.conf.template:/etc/nginx/templates/default.conf.template:ro"
)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_the_nginx_template_rendered_as_the_image_does_passes_nginx_t(tmp_path):
    config = write_config(tmp_path, "127.0.0.1:18290", "127.0.0.1:18291")
    result = subprocess.run(nginx_command(config, "-t"), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert not re.search(r"\$\{\w+\}", (tmp_path / "customer-metrics.conf").read_text())


def test_compose_publishes_only_the_proxy_with_the_apps_limits(repo_root):
    services = yaml.safe_load((repo_root / "docker-compose.yml").read_text())["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}
    proxy, app = services["proxy"], services["app"]
    assert TEMPLATE_MOUNT in proxy["volumes"]
    for limit in ("MAX_BODY_BYTES", "REQUEST_READ_TIMEOUT"):
        assert proxy["environment"][limit] == app["environment"][limit]
    assert proxy["environment"]["APP_UPSTREAM"] == "app:8000"


def test_the_template_buffers_bodies_and_takes_its_limits_from_the_environment():
    template = TEMPLATE.read_text()
    for directive in (
        "proxy_request_buffering on;",
        "client_max_body_size ${MAX_BODY_BYTES};",
        "client_body_timeout ${REQUEST_READ_TIMEOUT}s;",
        "client_header_timeout ${REQUEST_READ_TIMEOUT}s;",
        "large_client_header_buffers 4 16k;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ):
        assert directive in template
    # nginx's own refusals are problem+json, like the service's.
    assert re.findall(r"error_page (\d+)", template) == [
        "400",
        "408",
        "413",
        "414",
        "494",
        "500",
        "502",
        "504",
    ]
