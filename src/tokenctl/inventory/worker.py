"""The one thread that does a bulk run's inventory work, committing in groups.

``renew --all`` keeps the inventory (one SQLite connection) off its event loop, on one
thread. Each renewal's new token set is committed with ``synchronous = FULL``: a sync to
disk per token would cost more than the provider's answer. :class:`InventoryWorker` runs
every step queued while the previous group was busy inside one
:meth:`~tokenctl.inventory.Inventory.group_commit`, so they share one commit, and only
then hands each step its result: a caller never goes on (releases its token's lock,
reports the renewal) before its change is durable. Each change stays atomic on its own;
one that fails fails alone.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager
from typing import Any, TypeVar

_T = TypeVar("_T")

#: A queued step: its future, the function and its arguments.
_Step = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class InventoryWorker(Executor):
    """An executor of one thread whose steps, queued together, commit together.

    ``group`` opens the inventory's group (``inventory.group_commit``). A step's future
    gets its result, or its own error, once the group it ran in has committed; when the
    commit itself fails, every step of that group gets the commit's error.
    """

    def __init__(
        self,
        group: Callable[[], AbstractContextManager[None]],
        name: str = "tokenctl-inventory",
    ) -> None:
        self._group = group
        self._queue: queue.SimpleQueue[_Step | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Queue ``fn(*args, **kwargs)``; its future resolves after its group committed."""
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the inventory worker has been shut down")
            self._queue.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Finish the queued steps (or cancel them), then stop the thread."""
        with self._lock:
            if not self._closed:
                self._closed = True
                if cancel_futures:
                    self._cancel_queued()
                self._queue.put(None)
        if wait:
            self._thread.join()

    def _cancel_queued(self) -> None:
        while True:
            try:
                step = self._queue.get_nowait()
            except queue.Empty:
                return
            if step is not None:
                step[0].cancel()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            steps = [first]
            stop = False
            while True:  # everything queued meanwhile joins this group
                try:
                    step = self._queue.get_nowait()
                except queue.Empty:
                    break
                if step is None:
                    stop = True
                    break
                steps.append(step)
            self._run_group(steps)
            if stop:
                return

    def _run_group(self, steps: list[_Step]) -> None:
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        try:
            with self._group():
                for future, fn, args, kwargs in steps:
                    if not future.set_running_or_notify_cancel():
                        continue
                    try:
                        outcomes.append((future, True, fn(*args, **kwargs)))
                    except BaseException as error:  # this step's own failure, handed over
                        outcomes.append((future, False, error))
        except BaseException as error:  # the group did not commit: nothing of it is kept
            done = {id(future) for future, _ok, _value in outcomes}
            for future, _fn, _args, _kwargs in steps:
                if id(future) in done or future.set_running_or_notify_cancel():
                    future.set_exception(error)  # also the steps the failure kept from running
            return
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
