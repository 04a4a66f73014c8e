"""The product's settings with bench.floor_urls: B1 measures what its layers cost alone."""

from hitl.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor_urls"
