"""Batches searched side by side (`decoding.concurrent_batches`): order, width, early stops."""

import threading
import time

from nmt.decoding.translator import _search_all


class FakeSearch:
    """Records how many searches run at once; later batches finish sooner, to test order."""

    def __init__(self, batches: int):
        self.batches = batches
        self.lock = threading.Lock()
        self.running = self.peak = self.started = 0
        self.first_done_before_others_started = True

    def __call__(self, batch: int) -> int:
        with self.lock:
            self.started += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
            if batch > 0 and self.running > 1 and self.started <= 2:
                self.first_done_before_others_started = False
        time.sleep(0.002 * (self.batches - batch))
        with self.lock:
            self.running -= 1
        return batch * 10


def test_results_come_in_input_order_with_the_searches_side_by_side():
    search = FakeSearch(12)
    assert list(_search_all(list(range(12)), search, concurrent=3)) == [i * 10 for i in range(12)]
    assert search.peak == 3
    assert search.first_done_before_others_started  # it traces the graph alone


def test_a_traced_search_starts_every_batch_side_by_side():
    search = FakeSearch(6)
    assert list(_search_all(list(range(6)), search, 3, first_alone=False)) == [
        0,
        10,
        20,
        30,
        40,
        50,
    ]
    assert search.peak == 3


def test_one_at_a_time_is_one_at_a_time():
    search = FakeSearch(5)
    assert list(_search_all(list(range(5)), search, concurrent=1)) == [0, 10, 20, 30, 40]
    assert search.peak == 1


def test_a_reader_that_stops_leaves_no_backlog_to_search():
    """Ctrl-C during a long file: only the batches already running finish, not the whole file."""
    search = FakeSearch(50)
    results = _search_all(list(range(50)), search, concurrent=3)
    assert [next(results), next(results)] == [0, 10]
    results.close()
    assert search.started <= 1 + 3 + 1, search.started  # the first, 3 running, 1 refilled
