"""A long schemathesis campaign: the suite's run (tests/test_schemathesis.py), larger.

    .venv/bin/python benchmarks/schemathesis_campaign.py [--examples 1000]
        [--scenarios 300] [--backend postgresql|sqlite]

Runs every check over every operation with `--examples` generated cases each (plus the
explicit and coverage cases), then `--scenarios` stateful sequences, against the app on
a real database made by the suite's fixtures, and prints per operation: the requests
sent (the checks' probes included) with the statuses answered, and the distinct
failures found. Same seed as the suite; runs in the foreground and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAILURE_CODE = re.compile(r"^\s*\|?\s*- (ST\d+ [^\n]+|Server error|[A-Z][^\n]{3,80})$", re.M)


class Outcomes:
    """A pytest plugin that keeps each test's outcome and the failure kinds it reported."""

    def __init__(self) -> None:
        self.failures: dict[str, list[str]] = defaultdict(list)
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.outcome == "passed":
            return
        name = report.nodeid.split("::", 1)[1]
        self.outcomes[name] = report.outcome
        if report.failed:
            text = str(report.longrepr)
            self.failures[name] = sorted(set(FAILURE_CODE.findall(text))) or [text[-300:]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--scenarios", type=int, default=300)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument(
        "--skip-known",
        action="store_true",
        help="drop the failures other work is fixing (tests/schemathesis_support.py, 'known:')",
    )
    args = parser.parse_args()
    os.environ["SCHEMATHESIS_SKIP_KNOWN"] = "1" if args.skip_known else "0"
    os.environ["SCHEMATHESIS_EXAMPLES"] = str(args.examples)
    os.environ["SCHEMATHESIS_SCENARIOS"] = str(args.scenarios)
    sys.path.insert(0, str(ROOT))
    outcomes = Outcomes()
    started = time.monotonic()
    pytest.main(
        [
            str(ROOT / "tests" / "test_schemathesis.py"),
            "-q",
            "-p",
            "no:logging",
            "-k",
            args.backend,
            "--rootdir",
            str(ROOT),
        ],
        plugins=[outcomes],
    )
    elapsed = time.monotonic() - started
    # Imported by the run (importing it first would keep pytest from rewriting its asserts).
    from tests.schemathesis_support import TALLY

    print(
        f"\nschemathesis campaign on {args.backend}: {args.examples} examples per operation, "
        f"{args.scenarios} stateful scenarios, {elapsed:.0f} s"
    )
    print(f"{'operation':55} {'requests':>8}  statuses")
    for line in TALLY.lines():
        print(line)
    print(f"\ntotal requests: {sum(sum(c.values()) for c in TALLY.statuses.values())}")
    print("\noutcome per test:")
    for name, outcome in sorted(outcomes.outcomes.items()):
        print(f"  {outcome:7} {name}")
        for failure in outcomes.failures.get(name, []):
            print(f"           {failure}")
    return 1 if outcomes.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
