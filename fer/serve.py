"""An HTTP API for the recognizer: FastAPI on uvicorn (``python -m fer serve``).

::

    app = create_app(EmotionRecognizer(profile="live"), limits=ServeLimits(max_faces=20), token="s3cret")
    uvicorn.run(app, host="127.0.0.1", port=8000)

- ``POST /analyze``: an image as a multipart upload (any file field) or as the raw request body;
  the answer is one ``python -m fer predict --json`` entry (``{"file", "faces": [...]}``).
- ``GET /health``: ``{"status": "ok", ...}`` (no token needed: load balancers probe it).
- ``GET /model``: the model card summary (profile, members, TTA, accuracy).

Every refusal is a 4xx with ``{"error": "..."}`` that says what was wrong: 400 an unreadable
image (with the ``file`` it named), 401 a missing or wrong token, 413 an upload or image over the
limits, 422 more faces than allowed. The app keeps no state between requests, so any number of
replicas can stand behind a load balancer (see docs/scale.md). FastAPI is imported here only:
``import fer`` stays light.
"""

import hmac
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

TOKEN_ENV = "FER_API_TOKEN"
"""Environment variable ``python -m fer serve`` reads the API token from (unset: no token needed)."""


INSTALL_HINT = "FastAPI is not installed: python -m pip install -r requirements-scale.txt"


def require_fastapi() -> None:
    """``ImportError`` with the one line that says how to install FastAPI, when it is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL_HINT) from None


@dataclass(frozen=True)
class ServeLimits:
    """The largest request served: upload bytes, image pixels (width x height) and faces per image."""

    max_bytes: int = 10_000_000
    max_pixels: int = 25_000_000
    max_faces: int = 50

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_faces"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be 1 or more")


class Refused(Exception):
    """A request answered with a 4xx: ``status`` and a message that says what to change."""

    def __init__(self, status: int, message: str, **extra) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": message, **extra}


def card_summary(recognizer) -> dict:
    """What ``GET /model`` answers: the profile, its models and their training, the TTA and the correction."""
    ens = recognizer.ensemble
    members = [{"architecture": c.architecture, "created": c.created, "epochs": c.epochs, "backend": c.backend,
                "keras_version": c.keras_version, "metrics": c.metrics} for c in ens.cards]
    return {"profile": recognizer.profile, "members": members, "weights": ens.weights, "tta": ens.tta, "tau": ens.tau,
            "passes": ens.passes, "prior_corrected": ens.prior is not None, "detector": recognizer.detector,
            "input_size": recognizer.input_size, "min_face": recognizer.min_face, "min_score": recognizer.min_score,
            **{k: v for k, v in ens.info.items() if k in ("description", "public_test", "ms_per_face")}}


def check_token(header: str | None, token: str | None) -> None:
    """``Refused(401)`` unless ``token`` is None or ``header`` is ``Bearer <token>`` (constant-time compare)."""
    if token is None:
        return
    given = (header or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Refused(401, "missing or wrong API token: send the header 'Authorization: Bearer <token>'")


def image_pixels(data: bytes) -> int | None:
    """Width x height from the image's header (nothing decoded), or None when it is not an image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.size[0]) * int(img.size[1])
    except Exception:  # noqa: BLE001  (unreadable: predict_entry names the problem)
        return None


def create_app(recognizer, *, limits: ServeLimits = ServeLimits(), token: str | None = None) -> "FastAPI":
    """The FastAPI app around one loaded recognizer (shared by all requests; it is thread-safe)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    from fer.cli_predict import predict_entry

    app = FastAPI(title="fer: facial-expression recognition", version="1")
    summary = card_summary(recognizer)

    @app.exception_handler(Refused)
    async def refused(_request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "profile": recognizer.profile}

    @app.get("/model")
    async def model(request: Request) -> dict:
        check_token(request.headers.get("authorization"), token)
        return summary

    @app.post("/analyze")
    async def analyze(request: Request) -> JSONResponse:
        check_token(request.headers.get("authorization"), token)
        name, data = await read_image(request, limits.max_bytes)
        pixels = image_pixels(data)
        if pixels is not None and pixels > limits.max_pixels:
            raise Refused(413, f"the image has {pixels:,} pixels, over the limit of {limits.max_pixels:,}; "
                               "downscale it and try again", file=name)
        entry = await run_in_threadpool(predict_entry, recognizer, data, name)
        if "error" in entry:
            return JSONResponse(entry, status_code=400)
        if len(entry["faces"]) > limits.max_faces:
            raise Refused(422, f"the image has {len(entry['faces'])} faces, over the limit of {limits.max_faces}; "
                               "crop it into smaller parts", file=name)
        return JSONResponse(entry)

    return app


async def read_image(request, max_bytes: int) -> tuple[str, bytes]:
    """``(file name, bytes)`` of the image in a multipart upload or a raw body, at most ``max_bytes``."""
    body = await _read_body(request, max_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        if not body:
            raise Refused(400, "the request has no image: POST the image as the body or as a multipart file")
        return request.headers.get("x-filename", "upload"), body
    return await _multipart_file(request.headers, body, max_bytes)


async def _read_body(request, max_bytes: int) -> bytes:
    def too_big(size: str) -> Refused:
        return Refused(413, f"the upload is {size} bytes, over the limit of {max_bytes:,}; "
                            "downscale or recompress the image")

    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_big(f"{int(length):,}")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > max_bytes:
            raise too_big(f"more than {max_bytes:,}")
    return bytes(buf)


async def _multipart_file(headers, body: bytes, max_bytes: int) -> tuple[str, bytes]:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream():
        yield body
        yield b""

    try:
        form = await MultiPartParser(headers, stream(), max_files=1, max_fields=10, max_part_size=max_bytes).parse()
    except MultiPartException as exc:
        raise Refused(400, f"the multipart upload is malformed ({exc.message}); send one image file") from None
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if not files:
        raise Refused(400, "the multipart upload has no file; send the image as a file field, e.g. -F file=@photo.jpg")
    data = await files[0].read()
    await form.close()
    return files[0].filename or "upload", data


def run(recognizer, host: str = "127.0.0.1", port: int = 8000, *, limits: ServeLimits = ServeLimits(),
        token: str | None = None) -> None:
    """Serve the API with uvicorn until Ctrl-C."""
    import uvicorn

    uvicorn.run(create_app(recognizer, limits=limits, token=token), host=host, port=port, log_level="info")
