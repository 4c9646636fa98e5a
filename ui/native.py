"""Native-library load order: WebRTC's SRTP library must be bound before TensorFlow is loaded.

``pylibsrtp`` (used by aiortc, under streamlit-webrtc) carries a static OpenSSL whose symbols it
exports and calls through the PLT, and TensorFlow loads ``libtensorflow_framework.so`` into the
global symbol scope with BoringSSL functions of the same names. Whichever order the modules are
imported in, symbols bound after TensorFlow is loaded resolve to BoringSSL, and aiortc's import
(``srtp_init``) then crashes the whole process with a segmentation fault. :func:`preload_webrtc`
loads the SRTP binding first with every symbol bound at once (``RTLD_NOW``), so later imports of
TensorFlow cannot interpose. Call it before anything imports TensorFlow (app.py does, first).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys


def preload_webrtc() -> None:
    if "pylibsrtp._binding" in sys.modules:
        return
    if "tensorflow" in sys.modules:
        raise RuntimeError("TensorFlow was imported before the WebRTC libraries; call "
                           "ui.native.preload_webrtc() first (importing aiortc now would crash the process)")
    spec = importlib.util.find_spec("pylibsrtp._binding")
    if spec is None or not spec.origin:  # streamlit-webrtc not installed: nothing to guard
        return
    ctypes.CDLL(spec.origin, mode=os.RTLD_NOW)
    import pylibsrtp  # noqa: F401 - runs srtp_init now, with its own OpenSSL
