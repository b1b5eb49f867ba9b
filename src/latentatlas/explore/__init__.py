"""The local web explorer: ``latentatlas explore RUN`` serves a page (a map of the codes to hover and click,
interpolation strips, a slider along attribute and principal directions, mixture components to sample)
and a JSON/PNG API over the pure ``latent/`` functions.

- :mod:`latentatlas.explore.explorer`: the run opened for exploring (no web framework needed);
- :mod:`latentatlas.explore.app`: the Starlette app, its endpoint table (served at ``/api``) and the server;
- ``static/``: the page (HTML, JS, CSS), shipped in the package; nothing is fetched from the internet.

Starlette and uvicorn are the optional extra ``explore`` and are imported only when a server starts.
"""

from __future__ import annotations

import importlib
from typing import Any

INSTALL_HINT = "pip install 'latentatlas[explore]'"


def require_web() -> None:
    """Raise an ImportError that says how to install the extra when starlette or uvicorn is missing."""
    try:
        for name in ("starlette", "uvicorn"):
            importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"the explorer needs starlette and uvicorn ({err.name} is missing): {INSTALL_HINT}") \
            from None


def serve(run: Any, *, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Open ``run`` (a run folder or :class:`~latentatlas.runs.store.Run`) and serve the explorer on
    ``host:port`` until interrupted; ``options`` go to :class:`~latentatlas.explore.explorer.Explorer`."""
    require_web()
    from latentatlas.explore.app import run_server

    run_server(run, host=host, port=port, **options)
