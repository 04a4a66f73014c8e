"""The fake platform and a client of it, for the hitl_client tests."""

import pytest

from hitl_client import HitlClient

from .fake_platform import KEY, FakePlatform


@pytest.fixture
def platform():
    fake = FakePlatform()
    yield fake
    fake.close()


@pytest.fixture
def client(platform):
    return HitlClient(platform.url, KEY, timeout=10)
