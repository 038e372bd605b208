import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


CHILD = "CPC_TEST_CHILD"  # set in the child pytest process that `in_child_process` starts


def pytest_configure(config):
    config.addinivalue_line("markers", "child_process: runs only in the child pytest process of in_child_process "
                                       "(the parent skips it)")


def pytest_collection_modifyitems(config, items):
    import os

    child = os.environ.get(CHILD) == "1"
    for item in items:
        if not child and "child_process" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="runs in a child process (in_child_process)"))
        if child and "in_child_process" in getattr(item, "fixturenames", ()):  # no grandchildren
            item.add_marker(pytest.mark.skip(reason="this is the child process"))


@pytest.fixture
def in_child_process():
    """Runs the tests of a file selected by -k in a child pytest process; fails with its output if one fails.
    For tests of libraries that start native threads at import (pyarrow, onnxruntime): a later fork in this
    process (a DataLoader worker) could deadlock on a lock one of those threads held."""
    import os
    import subprocess
    import sys

    def run(path: str, keyword: str) -> None:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path, "-k", keyword],
                                env={**os.environ, CHILD: "1"}, capture_output=True, text=True)
        assert result.returncode == 0 and " passed" in result.stdout, result.stdout[-4000:] + result.stderr[-2000:]

    return run
