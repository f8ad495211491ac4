"""Core of the MCW consultation-room node: plain Python that runs unchanged under MicroPython
(on the RP2040 board, through ``main.py``) and CPython (unit tests, and the simulated van that
serves this very code on its RS-485 bus).

Kept to the subset both interpreters share: no ``typing``, no dataclasses, no f-strings with
``=``; annotations are only annotations (MicroPython ignores them, CPython 3.11 evaluates
them, so they name builtins and our own classes only). Time comes in as integer milliseconds
from ``time.ticks_ms()``, which wraps: every comparison goes through :mod:`roomnode.ticks`.
"""
