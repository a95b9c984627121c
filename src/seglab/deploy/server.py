"""``seglab serve``: a Starlette app on uvicorn around one :class:`~seglab.deploy.predictors.Predictor`.

``POST /predict`` takes an image (the raw request body, or a multipart form field ``file``) and answers a PNG
class map (semantic; palette PNG, pixel = class index) or JSON detections with RLE masks (instance).
``GET /health`` and ``GET /info`` describe the server. Every bad upload gets a 4xx with a message: 400 not an
image / truncated, 413 too large (bytes or pixels), 422 channels the model cannot take; a full queue gets 503;
nothing answers with a traceback. Inference runs on ``workers`` threads (onnxruntime and torch release the GIL);
at most ``workers + queue`` requests are admitted at once. On SIGTERM uvicorn stops accepting connections and
finishes the requests in flight before the process exits.
"""

from __future__ import annotations

import asyncio
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from seglab.deploy.predictors import Predictor

log = logging.getLogger("seglab.serve")
# Modes Pillow decodes into something gray/RGB models take; others (CMYK, YCbCr, LAB, HSV) are refused.
ACCEPTED_MODES = ("1", "L", "P", "RGB", "RGBA", "LA", "PA", "I;16", "I;16B", "I;16L", "I", "F")


@dataclass(frozen=True)
class Limits:
    """What the server admits: upload size, decoded pixels, threads predicting, requests waiting."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    workers: int = 1
    queue: int = 16


def check_limits(limits: Limits) -> Limits:
    """Refuse limits that cannot serve anything (``ConfigError`` names the flag)."""
    from seglab.errors import ConfigError

    for flag, value, low in (("--workers", limits.workers, 1), ("--queue", limits.queue, 0),
                             ("--max-bytes", limits.max_bytes, 1), ("--max-pixels", limits.max_pixels, 1)):
        if value < low:
            raise ConfigError(f"Expected {flag} >= {low}, but got {value}.")
    return limits


class BadInput(Exception):
    """An upload the server refuses, with the HTTP status and the message the client gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode(data: bytes, channels: int, max_pixels: int) -> np.ndarray:
    """Upload bytes -> ``(H, W, C)`` uint8 (C = ``channels``), or :class:`BadInput` saying what is wrong."""
    from PIL import Image, UnidentifiedImageError

    from seglab.data.io import decode_image, open_image

    if not data:
        raise BadInput(400, "empty upload: send the image file as the request body or as form field 'file'.")
    try:
        im = open_image(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise BadInput(413, f"image too large to decode ({e}); the limit is {max_pixels} pixels.") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise BadInput(400, "not an image: Pillow cannot identify the upload (send PNG, JPEG, TIFF or BMP).") from e
    if im.width * im.height > max_pixels:
        raise BadInput(413, f"image of {im.width}x{im.height} = {im.width * im.height} pixels; the limit is "
                            f"{max_pixels} (serve --max-pixels).")
    if im.mode not in ACCEPTED_MODES:
        raise BadInput(422, f"image mode {im.mode} ({len(im.getbands())} channels) cannot be read as gray or RGB; "
                            "the model takes gray, RGB or RGBA images.")
    try:  # pixels as seglab.data.io.read_image gives them to `seglab predict` (16-bit / float scaled, NaN)
        return decode_image(im, channels)
    except Exception as e:  # Pillow raises OSError, SyntaxError, EOFError, ... for cut or damaged files
        raise BadInput(400, f"truncated or corrupt image ({type(e).__name__}: {str(e)[:120]}).") from e


def encode_png(labels: np.ndarray, palette: np.ndarray) -> bytes:
    """A class map as the palette PNG ``seglab predict`` writes (8-bit indices, 16-bit past 255 classes)."""
    from PIL import Image

    if labels.max(initial=0) > 255:
        im = Image.fromarray(labels.astype(np.uint16))
    else:
        im = Image.fromarray(labels.astype(np.uint8))
        im.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def create_app(predictor: Predictor, limits: Limits | None = None):
    """The ASGI app (Starlette): routes, admission control and the inference thread pool."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    limits = limits or Limits()
    pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="seglab-predict")
    state = {"admitted": 0, "served": 0, "refused": 0}

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "in_flight": state["admitted"]})

    async def info(request: Request) -> JSONResponse:
        return JSONResponse({**predictor.info(), "limits": limits.__dict__})

    async def predict(request: Request) -> Response:
        if state["admitted"] >= limits.workers + limits.queue:
            state["refused"] += 1
            return JSONResponse({"error": f"busy: {state['admitted']} requests in progress (serve --queue "
                                          f"{limits.queue}); retry later."}, status_code=503)
        state["admitted"] += 1
        try:
            data = await _upload(request, limits.max_bytes)
            image = decode(data, predictor.image_channels, limits.max_pixels)
            result = await asyncio.get_running_loop().run_in_executor(pool, predictor.predict, image)
            state["served"] += 1
            if predictor.task == "semantic":
                return Response(encode_png(result, predictor.palette), media_type="image/png")
            return JSONResponse(result)
        except BadInput as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except Exception as e:  # a model failure: logged here, never a traceback to the client
            log.exception("prediction failed")
            return JSONResponse({"error": f"internal error ({type(e).__name__}); see the server log."},
                                status_code=500)
        finally:
            state["admitted"] -= 1

    app = Starlette(routes=[Route("/health", health), Route("/info", info),
                            Route("/predict", predict, methods=["POST"])])
    app.state.stats = state
    return app


async def _upload(request: Any, max_bytes: int) -> bytes:
    """The image bytes (raw body or form field ``file``), refused with 413 past ``max_bytes``."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise BadInput(413, f"upload of {int(length)} bytes; the limit is {max_bytes} (serve --max-bytes).")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=max_bytes)
        except Exception as e:  # starlette's MultiPartException and parser errors
            raise BadInput(400, f"malformed multipart form ({str(e)[:120]}); send the image as field 'file'.") from e
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise BadInput(400, "multipart form without a file field 'file'.")
        return await upload.read()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BadInput(413, f"upload larger than {max_bytes} bytes (serve --max-bytes).")
        chunks.append(chunk)
    return b"".join(chunks)


def serve(path: str, *, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          threads: int | None = None, score_threshold: float = 0.5, ready=None) -> None:
    """Load the model at ``path`` and serve it until SIGTERM / Ctrl-C (in-flight requests are finished first).

    ``ready(host, port)`` is called once the socket listens (the CLI prints the address there).
    """
    import uvicorn

    from seglab.deploy.predictors import load_predictor

    limits = limits or Limits()
    app = create_app(load_predictor(path, threads=threads, score_threshold=score_threshold), limits)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30,
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    if ready is not None:
        _call_when_started(server, ready, host, port)
    server.run()


def _call_when_started(server, ready, host: str, port: int) -> None:
    import threading
    import time

    def wait() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            ready(host, port)

    threading.Thread(target=wait, daemon=True).start()
