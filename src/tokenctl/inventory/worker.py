"""Where a bulk run's inventory steps run, committing in groups.

The local store commits each renewal's new token set with ``synchronous = FULL``: a
sync to disk per token would cost more than the provider's answer. So ``renew --all``
runs its inventory steps inside :meth:`~tokenctl.inventory.Inventory.group_commit` and
hands each step its result only after its group committed: a caller never goes on
(releases its token's lock, reports the renewal) before its change is durable. Each
change stays atomic on its own; one that fails fails alone. Two executors:

* :class:`LoopGroups` (the local store): each step at once on the event loop's thread;
  the steps of one turn of the loop share one commit. A step there is local disk work
  of a fraction of a millisecond, less than a hop to another thread and back costs.
* :func:`server_steps` (the team store, whose steps are requests to a server that
  writes each change through): a pool of threads, so that the renewals' requests
  overlap; its group is a no-op.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, TypeVar

_T = TypeVar("_T")


def server_steps(threads: int) -> ThreadPoolExecutor:
    """The executor of a team store's steps: ``threads`` of them, each step on its own.

    A renewal's steps are a dozen requests to the server, each a few milliseconds of
    waiting: made one renewal after another they, not the provider, would set the pace.
    The store keeps what one process changes on one records page in order
    (:class:`~tokenctl.store.openbao.inventory.OpenBaoInventory`).
    """
    return ThreadPoolExecutor(max(1, threads), thread_name_prefix="tokenctl-inventory")


class LoopGroups(Executor):
    """An executor that runs each step at once, on the event loop's thread, in groups.

    ``group`` opens the inventory's group (``inventory.group_commit``). The first step
    of a turn of the loop opens one, and a callback the loop runs next commits it: the
    steps the loop's coroutines ran meanwhile share its one commit. A step's future gets
    its result, or its own error, once that commit is done; when the commit itself fails,
    every step of the group gets the commit's error. :meth:`submit` must be called on the
    loop's thread, with the loop running.

    A wait for another process's write lock (SQLite's busy timeout) holds the loop for
    as long; such holds last milliseconds, and a provider's answer meanwhile waits in
    the socket, not lost.
    """

    def __init__(self, group: Callable[[], AbstractContextManager[None]]) -> None:
        self._group = group
        self._open: AbstractContextManager[None] | None = None
        self._ran: list[tuple[Future[Any] | asyncio.Future[Any], bool, Any]] = []
        self._closed = False

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Run ``fn(*args, **kwargs)`` now; its future resolves once its group committed."""
        future: Future[_T] = Future()
        future.set_running_or_notify_cancel()
        self._run(future, fn, args, kwargs)
        return future

    def schedule(self, fn: Callable[..., _T], /, *args: Any) -> asyncio.Future[_T]:
        """:meth:`submit` with a future of the running loop: awaited without a hand-off."""
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._run(future, fn, args, {})
        return future

    def _run(
        self,
        future: Future[Any] | asyncio.Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        if self._closed:
            raise RuntimeError("the inventory steps have been shut down")
        if self._open is None:
            loop = asyncio.get_running_loop()
            try:
                opening = self._group()
                opening.__enter__()
            except BaseException as error:  # no group, no step: it fails, nothing waits
                future.set_exception(error)
                return
            self._open = opening
            loop.call_soon(self._commit)
        try:
            self._ran.append((future, True, fn(*args, **kwargs)))
        except BaseException as error:  # this step's own failure, handed over at commit
            self._ran.append((future, False, error))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Commit the open group, if any (its steps ran: their changes are kept)."""
        self._closed = True
        self._commit()

    def _commit(self) -> None:
        group, ran = self._open, self._ran
        if group is None:
            return
        self._open, self._ran = None, []
        try:
            group.__exit__(None, None, None)
        except BaseException as error:  # the group did not commit: nothing of it is kept
            ran = [(future, False, error) for future, _ok, _value in ran]
        for future, ok, value in ran:
            if future.done():  # a loop future whose awaiting task was cancelled
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def step_future(steps: Executor, fn: Callable[..., _T], /, *args: Any) -> asyncio.Future[_T]:
    """``fn(*args)`` on ``steps``, as a future of the running loop.

    It resolves once the step's group committed. :class:`LoopGroups` hands its own loop
    future over; any other executor's future is wrapped.
    """
    if isinstance(steps, LoopGroups):
        return steps.schedule(fn, *args)
    return asyncio.wrap_future(steps.submit(fn, *args))
