"""`python -m service.background [--nice N]`: the background worker, in this process.

What gunicorn's master starts beside its workers (`service.background.supervisor`).
It is `customer-metrics worker` itself, so it makes the same checks before it starts
(a database that exists, a SECRETS_KEY that opens the stored secrets) and refuses
the same way: one line, exit status 1.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from service.cli import main as command_line

    command_line(["worker", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
