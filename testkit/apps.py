from django.apps import AppConfig


class TestkitConfig(AppConfig):
    """Test support as an app only for its `fakeupstream` management command, which
    the `make run` demo and the benchmarks start; it has no models."""

    name = "testkit"
