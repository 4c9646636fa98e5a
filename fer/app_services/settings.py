"""The app's configuration: paths, limits, WebRTC ICE servers and training access, from secrets or the environment.

Every value is looked up first in the Streamlit secrets (``.streamlit/secrets.toml``), then in the
environment, then falls back to a default; see ``docs/app.md`` for the list. This module does not
import Streamlit: :func:`ui.state.settings` passes the secrets in. It is the one place that reads
the app's ``FER_*`` settings; the core reads only ``FER_CACHE_DIR`` and, for the developers' tools,
``FER_SHARED_DATA`` (:mod:`fer.data`).
"""

from __future__ import annotations

import hmac
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fer.modelfile import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STUN = "stun:stun.l.google.com:19302"


@dataclass(frozen=True)
class Settings:
    models_dir: Path
    default_model: Path
    data_dir: Path
    work_dir: Path
    max_zip_mb: int = 1024
    max_zip_files: int = 100_000
    max_video_mb: float = 200.0  # FER_MAX_VIDEO_MB: the video page refuses larger uploads
    max_video_seconds: float = 300.0  # FER_MAX_VIDEO_SECONDS: and longer videos
    ice_servers: list[dict] = field(default_factory=list)
    training: bool = True  # FER_TRAINING=off removes training from the Train page
    admin_token: str | None = field(default=None, repr=False)  # FER_ADMIN_TOKEN: needed to train when set
    engine: str = "onnx"  # FER_ENGINE: what runs the emotion models on the Analyze and Live pages (onnx or keras)
    browser_int8: bool = True  # FER_BROWSER_INT8=off: the Live page's in-browser mode runs float32, not the 8-bit copy

    @classmethod
    def load(cls, secrets: Mapping | None = None, env: Mapping | None = None) -> "Settings":
        """Build settings from ``secrets`` (a Streamlit secrets dict) over ``env`` (``os.environ``)."""
        secrets = dict(secrets or {})
        env = os.environ if env is None else env

        def get(name: str, default=None):
            return lookup(name, secrets, env, default)

        models_dir = Path(get("FER_MODELS_DIR", REPO / "models")).expanduser()
        default_model = Path(get("FER_DEFAULT_MODEL", DEFAULT_MODEL)).expanduser()
        return cls(
            models_dir=models_dir,
            default_model=default_model,
            data_dir=Path(get("FER_DATA_DIR", REPO / "data")).expanduser(),
            work_dir=Path(get("FER_WORK_DIR", Path(tempfile.gettempdir()) / "fer-app")).expanduser(),
            max_zip_mb=_positive(get("FER_MAX_ZIP_MB", cls.max_zip_mb), "FER_MAX_ZIP_MB"),
            max_zip_files=_positive(get("FER_MAX_ZIP_FILES", cls.max_zip_files), "FER_MAX_ZIP_FILES"),
            max_video_mb=_positive(get("FER_MAX_VIDEO_MB", cls.max_video_mb), "FER_MAX_VIDEO_MB", float),
            max_video_seconds=_positive(get("FER_MAX_VIDEO_SECONDS", cls.max_video_seconds), "FER_MAX_VIDEO_SECONDS",
                                        float),
            ice_servers=ice_servers(secrets, env),
            training=_switch(get("FER_TRAINING", "on"), "FER_TRAINING"),
            admin_token=_token(get("FER_ADMIN_TOKEN")),
            engine=_engine(get("FER_ENGINE", cls.engine)),
            browser_int8=_switch(get("FER_BROWSER_INT8", "on"), "FER_BROWSER_INT8"),
        )

    @property
    def video_limits(self):
        """The video page's :class:`fer.video.VideoLimits` (``max_video_mb``, ``max_video_seconds``)."""
        from fer.video import VideoLimits

        return VideoLimits(max_mb=self.max_video_mb, max_seconds=self.max_video_seconds)

    def token_ok(self, given: str | None) -> bool:
        """Whether ``given`` may train: always without a configured admin token, else a constant-time match."""
        if self.admin_token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.admin_token.encode())

    def dataset_path(self, typed: str | None) -> Path:
        """Resolve a dataset path typed on the Train page, confined to the data folder (``FER_DATA_DIR``).

        ``typed`` is relative to the data folder (empty: the folder itself); an absolute path is
        accepted only when it lies inside it. Symbolic links and ``..`` are resolved first, so
        nothing outside the data folder can be reached. ValueError says what was wrong.
        """
        return confine(self.data_dir, typed, "the data folder (FER_DATA_DIR)")


def confine(root: Path, typed: str | None, what: str = "the allowed folder") -> Path:
    """The existing path ``typed`` (relative to ``root``) resolved, refused unless it stays inside ``root``."""
    text = (typed or "").strip()
    if "\x00" in text:
        raise ValueError("the path contains a NUL character; type a folder or file name inside "
                         f"{what}")
    try:
        base = root.resolve()
        target = (base / text).resolve() if text else base
    except (OSError, RuntimeError) as exc:  # a symbolic-link loop, a name too long
        raise ValueError(f"cannot resolve {text!r} inside {what}: {exc}") from None
    if not target.is_relative_to(base):
        raise ValueError(f"{text!r} is outside {what} {base}; type a path inside it, "
                         "such as a sub-folder name (no '..', no links or absolute paths leading elsewhere)")
    if not target.exists():
        raise ValueError(f"{target} does not exist; type a folder or file inside {what} {base}")
    return target


_ON, _OFF = {"on", "true", "1", "yes", "enabled"}, {"off", "false", "0", "no", "disabled"}


def _switch(value, name: str) -> bool:
    text = str(value).strip().lower()
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise ValueError(f"{name} must be on or off (or true/false, 1/0), got {value!r}")


def lookup(name: str, secrets: Mapping, env: Mapping, default=None):
    """A setting's raw value: the secrets (``NAME`` or ``name``), then the environment, then ``default``."""
    for key in (name, name.lower()):
        if key in secrets and secrets[key] not in (None, ""):
            return secrets[key]
    value = env.get(name)
    return default if value in (None, "") else value


def _engine(value) -> str:
    from fer.inference import ENGINES

    text = str(value).strip().lower()
    if text not in ENGINES:
        raise ValueError(f"FER_ENGINE must be one of {', '.join(ENGINES)} (onnx: ONNX Runtime, no TensorFlow on the "
                         f"Analyze pages; keras: the Keras models), got {value!r}")
    return text


def _token(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if len(text) < 8:
        raise ValueError("FER_ADMIN_TOKEN must be at least 8 characters long; "
                         "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(24))'")
    return text


def _positive(value, name: str, kind: type = int):
    """``value`` as a positive ``kind`` (int or float), else a ValueError naming the setting."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {'a whole number' if kind is int else 'a number'}, got {value!r}") from None
    if not number > 0:  # NaN too
        raise ValueError(f"{name} must be positive, got {value!r}")
    return number


def _split_urls(value) -> list[str]:
    if isinstance(value, str):
        return [u.strip() for u in value.replace(";", ",").split(",") if u.strip()]
    return [str(u) for u in value or []]


def ice_servers(secrets: Mapping, env: Mapping) -> list[dict]:
    """The RTCPeerConnection ``iceServers`` list.

    In order of precedence: a full list (secrets ``ice_servers`` or env ``FER_ICE_SERVERS`` as JSON;
    ``[]`` means host candidates only, for a LAN or localhost); else a STUN server (``FER_STUN_URLS``,
    default Google's public one) plus a TURN server when its URL and credentials are given (secrets
    table ``[turn]`` with ``urls``, ``username``, ``credential``, or env ``FER_TURN_URLS``,
    ``FER_TURN_USERNAME``, ``FER_TURN_CREDENTIAL``). A TURN relay is what makes the live page work
    for visitors behind symmetric NATs on a hosted deployment.
    """
    full = secrets.get("ice_servers")
    if full is None and env.get("FER_ICE_SERVERS") not in (None, ""):
        try:
            full = json.loads(env["FER_ICE_SERVERS"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"FER_ICE_SERVERS is not valid JSON ({exc})") from None
    if full is not None:
        if not isinstance(full, list) or not all(isinstance(s, Mapping) and s.get("urls") for s in full):
            raise ValueError("ice_servers / FER_ICE_SERVERS must be a list of objects with 'urls'")
        return [dict(s) for s in full]
    servers = []
    stun = _split_urls(env.get("FER_STUN_URLS") or secrets.get("stun_urls") or DEFAULT_STUN)
    if stun:
        servers.append({"urls": stun})
    turn = dict(secrets.get("turn") or {})
    urls = _split_urls(turn.get("urls") or env.get("FER_TURN_URLS") or "")
    if urls:
        username = turn.get("username") or env.get("FER_TURN_USERNAME")
        credential = turn.get("credential") or env.get("FER_TURN_CREDENTIAL")
        if not (username and credential):
            raise ValueError("a TURN server needs a username and a credential "
                             "(secrets [turn] username/credential or FER_TURN_USERNAME/FER_TURN_CREDENTIAL)")
        servers.append({"urls": urls, "username": str(username), "credential": str(credential)})
    return servers
