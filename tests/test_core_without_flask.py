"""The core (application and shared base, docs: LAYOUT.md layers 3 and 4) runs without Flask.

A worker, a command or a test that only ingests or computes metrics must not pay
for, or depend on, the HTTP stack: importing every core module in a fresh
interpreter loads none of the web libraries.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Application packages and modules, then the shared base; a listed name that does not
# exist (yet) is skipped, a module added to a listed package is imported with it.
CORE = (
    "service.ingestion",
    "service.metrics",
    "service.webhooks",
    "service.record_views",
    "service.retention",
    "service.change_log",
    "service.sql",
    "service.db",
    "service.models",
    "service.money",
    "service.text",
    "service.values",
    "service.failures",
    "service.instruments",
    "service.job_queue",
    "service.transient",
    "service.config",
    "service.jsonio",
    "service.logs",
    "service.secret_box",
    "service.rate_limits",
    "service.auth",
)
WEB_LIBRARIES = ("flask", "werkzeug", "flask_smorest", "marshmallow", "click", "webargs")

# Runs in a fresh interpreter: imports the core modules one by one (find_spec imports
# only the parent, `service`, which imports nothing), and
# reports each web library loaded with the first core module whose import loaded it.
_IMPORT_THE_CORE = """
import importlib, importlib.util, json, pkgutil, sys

core, web = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
imported, loaded_by = [], {}

def load(name):
    module = importlib.import_module(name)
    imported.append(name)
    for library in {m.split(".")[0] for m in sys.modules} & web - loaded_by.keys():
        loaded_by[library] = name
    return module

for name in core:
    if importlib.util.find_spec(name) is not None:
        module = load(name)
        if hasattr(module, "__path__"):
            for sub in pkgutil.walk_packages(module.__path__, name + ".", onerror=sys.exit):
                load(sub.name)
print(json.dumps({"imported": imported, "loaded_by": loaded_by}))
"""


def test_importing_the_core_loads_no_web_library(repo_root) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_THE_CORE, json.dumps(CORE), json.dumps(WEB_LIBRARIES)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert {"service.ingestion.batch", "service.metrics.query", "service.webhooks.intake"} <= set(
        found["imported"]
    )
    assert found["loaded_by"] == {}, "web libraries loaded by importing these core modules"
