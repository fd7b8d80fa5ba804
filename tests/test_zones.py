"""The zone names `tz` accepts: tzdata's list, whatever the host's zoneinfo holds."""

from __future__ import annotations

import zoneinfo

from service.metrics.zones import zone_names


def test_every_accepted_name_loads_as_a_zone():
    for name in zone_names():
        zoneinfo.ZoneInfo(name)


def test_the_names_are_iana_s_not_the_hosts_files():
    names = zone_names()
    assert len(names) > 500
    assert {"UTC", "Europe/Warsaw", "America/New_York", "US/Pacific"} <= names
    assert not any(name.startswith(("posix/", "right/")) for name in names)
    assert names.isdisjoint({"localtime", "posixrules", "Factory"})
    # All of them names zoneinfo itself lists.
    assert names <= zoneinfo.available_timezones()
