import multiprocessing
import threading

import pytest

from captum_hint.core.threads import map_row_ranges, row_ranges


@pytest.mark.parametrize("n_rows, workers", [(0, 2), (1, 4), (5, 2), (7, 3), (10, 16)])
def test_row_ranges_cover_the_rows_in_order(n_rows, workers):
    ranges = row_ranges(n_rows, workers)
    assert len(ranges) == max(1, min(workers, n_rows))
    assert [row for start, stop in ranges for row in range(start, stop)] == list(range(n_rows))
    sizes = [stop - start for start, stop in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_results_come_in_row_order_from_several_threads():
    seen = set()

    def work(start, stop):
        seen.add(threading.current_thread().name)
        return list(range(start, stop))

    parts = map_row_ranges(work, 10, workers=3)
    assert [row for part in parts for row in part] == list(range(10))
    assert len(parts) == 3 and threading.current_thread().name not in seen


def test_a_nested_call_runs_in_its_thread_instead_of_waiting():
    def inner(start, stop):
        return threading.current_thread().name

    outer = map_row_ranges(lambda start, stop: (threading.current_thread().name, map_row_ranges(inner, 4, 2)), 2, 2)
    for name, names in outer:
        assert names == [name, name]


def _in_child(queue):
    queue.put(map_row_ranges(lambda start, stop: stop - start, 6, 2))


def test_the_pool_works_again_in_a_forked_child():
    map_row_ranges(lambda start, stop: None, 4, 2)  # the parent's pool exists before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0 and queue.get(timeout=5) == [3, 3]
