"""settle_heap: the start-up heap leaves the collector's view, and young collections run less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gate.app import GC_YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settle_heap_freezes_what_lives_now_and_raises_the_young_threshold() -> None:
    gc.unfreeze()
    _, older, oldest = gc.get_threshold()
    survivor = [object() for _ in range(10)]
    settle_heap()
    assert gc.get_freeze_count() > len(survivor)
    assert gc.is_tracked(survivor)
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, older, oldest)
    assert GC_YOUNG_THRESHOLD > 700  # CPython's default: the point is fewer young collections
