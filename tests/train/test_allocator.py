import subprocess
import sys

import pytest

from cpc.train.allocator import limit_allocator_slack


def test_zero_leaves_the_allocator_alone():
    assert limit_allocator_slack(0) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_trim_threshold_is_set_on_glibc():
    # In a child process: a fixed threshold also freezes glibc's mmap threshold, which would slow this suite.
    code = "from cpc.train.allocator import limit_allocator_slack; print(limit_allocator_slack(8))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
