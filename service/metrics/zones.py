"""The time zone names a report may be asked in: IANA's, as the tzdata package lists them.

Not the host's files: /usr/share/zoneinfo also holds `localtime` (the machine's own
zone, so answers would depend on where the service runs), `posixrules`, and the
`posix/` and `right/` (leap-second) copies, all of which ZoneInfo() would load.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

# In tzdata's list, but not a place: the zone for "local time unknown" ("-00").
_NOT_PLACES = frozenset({"Factory"})


@cache
def zone_names() -> frozenset[str]:
    """Every IANA zone name, links such as UTC and US/Eastern included."""
    # The list zoneinfo.available_timezones() itself reads from the package.
    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(listed.split()) - _NOT_PLACES


def is_zone_name(name: str) -> bool:
    return name in zone_names()
