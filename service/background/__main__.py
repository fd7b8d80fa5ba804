"""`python -m service.background [--nice N]`: the background worker, in this process.

What gunicorn's master starts beside its workers (`service.background.supervisor`);
the same as `customer-metrics worker`, without the command line's other commands.
"""

from __future__ import annotations

import argparse

from service.background.process import run_in_this_process


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m service.background",
        description="Run the background work until the parent process exits.",
    )
    parser.add_argument("--nice", type=int, default=0, help="lower this process's priority by N")
    options = parser.parse_args(argv)
    # The composition root builds what the tasks reach through `service.extensions`.
    from service.app import create_command_app

    with create_command_app().app_context():
        run_in_this_process(options.nice)


if __name__ == "__main__":
    main()
