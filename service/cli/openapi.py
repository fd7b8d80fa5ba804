"""`customer-metrics openapi write|print`: flask-smorest's commands, run in the full app.

The other commands run in an app without the HTTP API (`create_command_app`), which
has no document to write; this group builds the API app, and imports flask-smorest only
when it runs, so the other commands do not pay for it.
"""

from __future__ import annotations

import click


class _OpenApiCommands(click.Group):
    """flask-smorest's `openapi` subcommands, looked up only when this group is used."""

    def _commands(self) -> dict[str, click.Command]:
        from flask_smorest.spec import openapi_cli

        return dict(openapi_cli.commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._commands())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._commands().get(cmd_name)


@click.group(cls=_OpenApiCommands)
@click.pass_context
def openapi(ctx: click.Context) -> None:
    """Write or print the OpenAPI document, generated from the code."""
    from service.app import create_app

    # flask-smorest's commands use the current app when there is one.
    ctx.with_resource(create_app(check_secrets=False).app_context())
