"""Registers the marker of the long end-to-end test."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end test with the simulated stack (minutes)")
