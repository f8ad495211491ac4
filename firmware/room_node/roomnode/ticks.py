"""Wrap-safe millisecond ticks, as MicroPython's ``time.ticks_ms()`` counts them.

On the RP2040 ``ticks_ms()`` wraps at 2**30 ms (about 12.4 days): a node that has run longer
than that must still time its debounce, lease and frame gaps right, so no tick value is ever
compared with ``<`` directly. The same arithmetic as ``time.ticks_diff``/``ticks_add``, written
out so it runs under CPython too.
"""

TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
_HALF = TICKS_PERIOD // 2


def ticks_diff(new: int, old: int) -> int:
    """Signed milliseconds from ``old`` to ``new`` (correct while they are < 2**29 ms apart)."""
    return ((new - old + _HALF) & TICKS_MAX) - _HALF


def ticks_add(ticks: int, delta: int) -> int:
    """The tick value ``delta`` milliseconds after ``ticks``."""
    return (ticks + delta) & TICKS_MAX
