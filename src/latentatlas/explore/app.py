"""The explorer's web app: a Starlette app over an :class:`~latentatlas.explore.explorer.Explorer`.

:data:`ENDPOINTS` is the API's documentation (served at ``/api``) and its contract: a request naming a
parameter its endpoint does not list is refused.  Query strings are read by :class:`Query`, which only
turns text into numbers; the Explorer's methods check the values (ranges, code dimension, method names)
with :mod:`latentatlas.validate`.  Any ``ValueError`` becomes a 400, a missing resource a 404, each a JSON
``{"error": "<parameter>: expected ..., got ..."}``; an unexpected error a 500 JSON without a traceback.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from latentatlas.config import SPLITS
from latentatlas.explore.explorer import Explorer, Unavailable
from latentatlas.runs.figures import image_grid
from latentatlas.validate import check_choice, check_number

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
INDEX = "a row of latents.npz (see n_codes in /api/info)"
FORMAT = "json (default: codes, and frames as PNG data URLs) or png (one strip)"


@dataclass(frozen=True)
class Endpoint:
    """One GET endpoint: what it does, its query parameters (name -> meaning) and what it answers."""

    path: str
    summary: str
    params: dict[str, str]
    returns: str


ENDPOINTS = {e.path: e for e in (
    Endpoint("/api", "this table", {}, "JSON (an HTML table when a browser asks)"),
    Endpoint("/api/info", "the run: code dimension, image shape, splits, and the names the other endpoints accept",
             {}, "JSON"),
    Endpoint("/api/map", "2-D map of the codes (the rows listed in index), coloured",
             {"method": "pca (default), tsne, or umap when umap-learn is installed",
              "color": "an attribute, label or split (default: the first in /api/info color_options)"},
             "JSON: index, x, y, split, color (one entry per point) and color_names"),
    Endpoint("/api/point", "one row: split, label, attributes, code, hull membership", {"index": INDEX}, "JSON"),
    Endpoint("/api/image", "the dataset image of a row", {"index": INDEX}, "PNG, the images' size"),
    Endpoint("/api/decode", "decode codes in one batch: z=v1,v2,... (d numbers; several codes separated by ';'), "
             "or the code of a row (its reconstruction)",
             {"z": "comma-separated code(s), at most 256", "index": INDEX + ", instead of z"},
             "PNG: one image, or a strip"),
    Endpoint("/api/interpolate", "decoded path between the codes of two rows (one decode call)",
             {"a": INDEX, "b": INDEX, "method": "lerp, slerp (default), norm or geodesic",
              "steps": "frames, endpoints included: 2-64 (default 9)", "format": FORMAT}, "JSON or PNG"),
    Endpoint("/api/move", "a row's code moved along a direction, decoded",
             {"index": INDEX, "direction": "pc1, pc2, ... or an attribute/label (see /api/info directions)",
              "amount": "standard deviations of the codes along the direction: -10 to 10"},
             "JSON: z, outside_hull, image (PNG data URL)"),
    Endpoint("/api/samplers", "the run's fitted Gaussian mixtures, each component's weight, variance, codes "
             "and regularisation", {}, "JSON: {name: [{component, weight, variance, n_k, reg_share, jitter}]}"),
    Endpoint("/api/sample", "codes drawn from one mixture component, decoded",
             {"sampler": "a name from /api/samplers", "component": "0 to k-1", "n": "1-64 (default 8)",
              "seed": "an int >= 0 (default 0): same seed, same codes", "format": FORMAT}, "JSON or PNG"),
    Endpoint("/api/hull", "whether codes lie outside the convex hull of the training codes",
             {"z": "comma-separated code(s), several separated by ';' (default: the map's points)"},
             "JSON: outside_hull (one flag per code)"),
)}

_REQUIRED = object()


class Query:
    """The query string of one request to ``endpoint``: names are checked against its table entry, values
    are read as text, integers, numbers or codes (a value that does not parse is named in the error)."""

    def __init__(self, request: Request, endpoint: Endpoint) -> None:
        self.params = request.query_params
        for name in self.params.keys():
            if name not in endpoint.params:
                expected = ", ".join(endpoint.params) or "no parameters"
                raise ValueError(f"{name}: unknown parameter of {endpoint.path}; expected {expected}")
            if len(self.params.getlist(name)) > 1:
                raise ValueError(f"{name}: expected one value, got {len(self.params.getlist(name))}")

    def has(self, name: str) -> bool:
        return name in self.params

    def text(self, name: str, default: Any = _REQUIRED) -> Any:
        if name in self.params:
            return self.params[name]
        if default is _REQUIRED:
            raise ValueError(f"{name}: expected a value, got nothing (the parameter is required)")
        return default

    def integer(self, name: str, default: Any = _REQUIRED) -> Any:
        return self._parse(name, default, int, integer=True)

    def number(self, name: str, default: Any = _REQUIRED) -> Any:
        return self._parse(name, default, float, integer=False)

    def codes(self, name: str) -> list[list[float]]:
        """``v1,v2,...;w1,w2,...`` -> a list of codes (each a list of numbers)."""
        out = []
        for code in self.text(name).split(";"):
            values = []
            for item in code.split(","):
                try:
                    values.append(float(item))
                except ValueError:
                    raise ValueError(f"{name}: expected comma-separated numbers, got {item.strip()!r}") from None
            out.append(values)
        if len({len(v) for v in out}) > 1:
            raise ValueError(f"{name}: expected codes of one length, got lengths {sorted({len(v) for v in out})}")
        return out

    def _parse(self, name: str, default: Any, kind: type, *, integer: bool) -> Any:
        raw = self.text(name, default)
        if raw is default:
            return raw
        try:
            return kind(raw)
        except ValueError:
            check_number(name, raw, integer=integer)     # raises: names the parameter and the text given
            raise


# -- responses --------------------------------------------------------------------------------------
def png_bytes(images: torch.Tensor) -> bytes:
    """Images float (n, C, H, W) in [0, 1] -> PNG bytes: one image, or a strip of n side by side."""
    from PIL import Image

    grid = image_grid(images, nrow=images.shape[0], pad=0)
    buffer = io.BytesIO()
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(buffer, format="PNG")
    return buffer.getvalue()


def png_response(images: torch.Tensor) -> Response:
    return Response(png_bytes(images), media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def data_url(image: torch.Tensor) -> str:
    """One image float (C, H, W) -> a ``data:image/png;base64,...`` URL."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image[None])).decode("ascii")


def frames(explorer: Explorer, codes: torch.Tensor, query: Query) -> Response:
    """Codes (n, d) decoded in one call: a PNG strip (format=png), or JSON with the codes and the frames."""
    fmt = query.text("format", "json")
    check_choice("format", fmt, ("json", "png"))
    images = explorer.decode(codes)
    if fmt == "png":
        return png_response(images)
    return JSONResponse({"codes": codes.tolist(), "frames": [data_url(x) for x in images]})


# -- endpoints --------------------------------------------------------------------------------------
def api_doc(ex: Explorer, q: Query, request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        rows = "".join(f"<tr><td><code>{e.path}</code></td><td>{html.escape(e.summary)}</td><td>"
                       + "<br>".join(f"<code>{k}</code>: {html.escape(v)}" for k, v in e.params.items())
                       + f"</td><td>{html.escape(e.returns)}</td></tr>" for e in ENDPOINTS.values())
        return HTMLResponse("<!doctype html><meta charset=utf-8><title>latentatlas explorer API</title>"
                            "<link rel=stylesheet href=/static/explorer.css><h1>latentatlas explorer API</h1>"
                            "<p>GET only; errors are JSON <code>{\"error\": ...}</code> with a 4xx status.</p>"
                            f"<table class=api><tr><th>path</th><th>what</th><th>parameters</th><th>answer</th></tr>"
                            f"{rows}</table>")
    return JSONResponse({"endpoints": [vars(e) for e in ENDPOINTS.values()]})


def info(ex: Explorer, q: Query, request: Request) -> Response:
    return JSONResponse(ex.describe())


def code_map(ex: Explorer, q: Query, request: Request) -> Response:
    xy = ex.map(q.text("method", "pca"))
    color, names = ex.colors(q.text("color", ex.color_options()[0]))
    split = ex.ctx.split[ex.points]
    return JSONResponse({"index": ex.points.tolist(), "x": np.round(xy[:, 0], 5).tolist(),
                         "y": np.round(xy[:, 1], 5).tolist(), "split": [SPLITS[s] for s in split],
                         "color": color.tolist(), "color_names": names})


def point(ex: Explorer, q: Query, request: Request) -> Response:
    index = q.integer("index")
    info = ex.label(index)
    code = ex.code(index)
    outside = info["split"] != "train" and bool(ex.outside_hull(code)[0])
    return JSONResponse({**info, "z": code.tolist(), "outside_hull": outside})


def image(ex: Explorer, q: Query, request: Request) -> Response:
    return png_response(ex.image(q.integer("index"))[None])


def decode(ex: Explorer, q: Query, request: Request) -> Response:
    if q.has("z") == q.has("index"):
        raise ValueError("z: expected either z (a code) or index (a row), got "
                         + ("both" if q.has("z") else "neither"))
    codes = q.codes("z") if q.has("z") else ex.code(q.integer("index"))
    return png_response(ex.decode(codes))


def interpolate_rows(ex: Explorer, q: Query, request: Request) -> Response:
    codes = ex.interpolate(q.integer("a"), q.integer("b"), method=q.text("method", "slerp"),
                           steps=q.integer("steps", 9))
    return frames(ex, codes, q)


def move(ex: Explorer, q: Query, request: Request) -> Response:
    code = ex.move(q.integer("index"), q.text("direction"), q.number("amount"))
    return JSONResponse({"z": code.tolist(), "outside_hull": bool(ex.outside_hull(code)[0]),
                         "image": data_url(ex.decode(code)[0])})


def samplers(ex: Explorer, q: Query, request: Request) -> Response:
    return JSONResponse({name: ex.components(name) for name in sorted(ex.samplers)})


def sample(ex: Explorer, q: Query, request: Request) -> Response:
    codes = ex.sample(q.text("sampler"), q.integer("component"), n=q.integer("n", 8), seed=q.integer("seed", 0))
    return frames(ex, codes, q)


def hull(ex: Explorer, q: Query, request: Request) -> Response:
    outside = ex.outside_hull(q.codes("z")) if q.has("z") else ex.points_outside_hull()
    return JSONResponse({"outside_hull": outside.tolist()})


HANDLERS: dict[str, Callable[[Explorer, Query, Request], Response]] = {
    "/api": api_doc, "/api/info": info, "/api/map": code_map, "/api/point": point, "/api/image": image,
    "/api/decode": decode, "/api/interpolate": interpolate_rows, "/api/move": move, "/api/samplers": samplers,
    "/api/sample": sample, "/api/hull": hull}


# -- the app ----------------------------------------------------------------------------------------
def _route(explorer: Explorer, path: str) -> Route:
    handler, endpoint = HANDLERS[path], ENDPOINTS[path]

    def respond(request: Request) -> Response:      # sync: Starlette runs it in its thread pool
        return handler(explorer, Query(request, endpoint), request)

    return Route(path, respond, methods=["GET"], name=path)


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        message = {404: f"no such page or endpoint: {request.url.path} (the API is listed at /api)",
                   405: f"{request.method}: the explorer answers GET requests only"}.get(exc.status_code, exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code)
    if isinstance(exc, Unavailable):
        return JSONResponse({"error": str(exc)}, status_code=404)
    if isinstance(exc, ValueError):
        return JSONResponse({"error": str(exc)}, status_code=400)
    log.error("explore: %s failed", request.url, exc_info=exc)
    return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server's log has the details"},
                        status_code=500)


def create_app(explorer: Explorer) -> Starlette:
    """The ASGI app serving ``explorer``: the page at ``/``, its files at ``/static``, the API at ``/api``."""
    def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    routes = [Route("/", index), *(_route(explorer, path) for path in ENDPOINTS),
              Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")]
    handlers = {HTTPException: _error, Unavailable: _error, ValueError: _error, Exception: _error}
    return Starlette(routes=routes, exception_handlers=handlers)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening: requests made from now on wait for the server."""
    check_number("port", port, low=1, high=65535, integer=True)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        raise ValueError(f"port: cannot listen on {host}:{port} ({err.strerror or err}); pick another --port") \
            from None
    sock.listen(128)
    return sock


def run_server(run: Any, *, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Open the run, listen, print the address to stdout, then serve with uvicorn until interrupted."""
    import uvicorn

    sock = listening_socket(host, port)
    app = create_app(Explorer(run, **options))
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("explore: serving on %s; anyone who can reach it can use it (there is no login)", host)
    print(f"explorer: http://{host}:{port}/  (API at /api; Ctrl-C stops it)", flush=True)

    class StopAtOnce(uvicorn.Server):
        """Stops on the first Ctrl-C (or SIGTERM) without waiting for the requests under way: the explorer
        writes nothing, so none has anything to finish, and a t-SNE map of a few thousand codes would hold
        the exit for half a minute (its thread cannot be cancelled)."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            print("explorer: stopped", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(0)

    StopAtOnce(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
