"""Stop requests: a signal handler asks the training loop to stop at its next iteration, after a checkpoint.

A worker's signal handler (``benchmark.cli``) calls ``request(exc)``. While a fold trains
(``polling()``, entered by ``train_fold``) the request is only recorded, and ``request`` returns True:
the loop takes it up before its next iteration (``take()``), writes the fold's training state, and
raises the exception. Outside a training loop ``request`` returns False and the
handler raises at once, as it did before. ``on_honour`` (given with the request) runs when the loop
takes it up, e.g. to cancel the handler's fallback timer that raises anyway if the loop is slow.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

_state: dict = {"depth": 0, "exc": None, "on_honour": None}


@contextmanager
def polling() -> Iterator[None]:
    """The caller checks ``pending()`` often (at every training iteration) while inside."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1


def is_polling() -> bool:
    return _state["depth"] > 0


def request(exc: type[BaseException] | BaseException, on_honour: Optional[Callable[[], None]] = None) -> bool:
    """Ask the training loop to stop by raising ``exc``; False (nothing recorded) when no loop is polling."""
    if not is_polling():
        return False
    if _state["exc"] is None:  # the first request's exception (its signal's exit status) stands
        _state["exc"], _state["on_honour"] = exc, on_honour
    return True


def pending() -> bool:
    return _state["exc"] is not None


def take() -> Optional[type[BaseException] | BaseException]:
    """The pending request's exception (None when there is none), cleared; its ``on_honour`` runs now."""
    exc, honour = _state["exc"], _state["on_honour"]
    if exc is None:
        return None
    clear()
    if honour is not None:
        honour()
    return exc


def clear() -> None:
    _state["exc"], _state["on_honour"] = None, None
