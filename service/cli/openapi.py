"""`customer-metrics openapi write`: the OpenAPI document of this version, to a file."""

from __future__ import annotations

from typing import IO

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_smorest.spec import write_openapi_doc


@click.group()
def openapi() -> None:
    """Write the OpenAPI document (the one /openapi.json serves)."""


@openapi.command("write")
@click.option("-f", "--format", "file_format", type=click.Choice(["json", "yaml"]), default="json")
@click.argument("output_file", type=click.File(mode="w"))
@with_appcontext
def write(file_format: str, output_file: IO[str]) -> None:
    """Write the document to OUTPUT_FILE ('-' for standard output)."""
    from service import create_app

    # Commands run without the HTTP API; the document needs it, with the same settings.
    api_app = create_app(current_app.extensions["customer_metrics.settings"])
    with api_app.app_context():
        write_openapi_doc.callback(file_format, output_file, "")
