"""pytest hooks of the python tests."""

import pytest


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(session, config, items):
    """Start compiling the modules of the selected CPU execution tests, in test order, on a
    thread pool (``cpu_exec_support.Build``): the first tests wait for their own library only,
    the rest compile while they run."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        for value in callspec.params.values():
            prebuild = getattr(value, "prebuild", None)
            if callable(prebuild):
                prebuild()
