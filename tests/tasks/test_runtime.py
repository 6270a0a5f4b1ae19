"""Ray runtime helpers: which addresses are joined on loopback."""

from __future__ import annotations

import pytest

from tasks.runtime import is_loopback_address


@pytest.mark.parametrize("address", ["127.0.0.1:6379", "127.0.1.1:1234", "localhost:6379", "ray://127.0.0.1:10001"])
def test_loopback_addresses_are_recognised(address):
    assert is_loopback_address(address)


@pytest.mark.parametrize("address", ["auto", "10.0.0.5:6379", "head.cluster.local:6379", "ray://10.1.2.3:10001"])
def test_other_addresses_are_joined_as_given(address):
    assert not is_loopback_address(address)
