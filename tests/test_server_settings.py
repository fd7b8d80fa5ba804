"""REQUEST_READ_TIMEOUT, the setting of the HTTP server's read deadline."""

from __future__ import annotations

import pytest

from service.config import ConfigError, Settings


def test_request_read_timeout_defaults_to_ten_seconds_and_is_read_from_the_environment():
    assert Settings.from_env({}).request_read_timeout == 10
    assert Settings.from_env({"REQUEST_READ_TIMEOUT": "3"}).request_read_timeout == 3


@pytest.mark.parametrize("value", ["0", "-1", "ten"])
def test_a_request_read_timeout_that_is_not_a_positive_integer_is_refused(value):
    with pytest.raises(ConfigError, match="REQUEST_READ_TIMEOUT"):
        Settings.from_env({"REQUEST_READ_TIMEOUT": value})
