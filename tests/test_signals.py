"""Stop signals as flags (cpc.signals): a Ctrl-C is taken between items, never lost and never mid-item."""

import os
import signal

import pytest

from cpc.signals import interruptible, stop_signals


def test_a_ctrl_c_during_an_item_is_raised_before_the_next_and_the_old_handler_comes_back():
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for item in interruptible(range(5)):
            seen.append(item)
            if item == 1:
                os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised here (as inside a C callback)
                seen.append("item 1 finished")
    assert seen == [0, 1, "item 1 finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_during_the_last_item_still_stops():
    with pytest.raises(KeyboardInterrupt):
        for _ in interruptible(range(1)):
            os.kill(os.getpid(), signal.SIGINT)


def test_stop_signals_records_names_and_a_second_ctrl_c_raises_at_once():
    with stop_signals() as received:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert received == ["SIGTERM", "SIGINT"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
