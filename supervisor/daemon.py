"""The ``mcw-supervisor`` command: the daemon, started without the libraries that draw on a
terminal.

rich is installed for ``mcwctl``'s tables, and structlog imports it (and greenlet, a test
tool's dependency in a developer's environment) when it finds it, for a console renderer
the daemon never uses: about 6 MB of the controller's memory for nothing. A name set to None
in ``sys.modules`` is one Python's import system treats as not installed; this module runs
before anything imports structlog, and only in the daemon's own process (tests and mcwctl
import ``supervisor.core.app`` as usual).
"""

from __future__ import annotations

import sys

for _unused in ("rich", "greenlet"):
    sys.modules.setdefault(_unused, None)  # type: ignore[arg-type]

from supervisor.core.app import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
