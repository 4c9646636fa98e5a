"""One adjustment to Streamlit's script runner, for an app that keeps Keras models in memory.

After every script run (every widget change, and every second while a page polls with
``st.fragment(run_every=...)``) Streamlit 1.67 calls ``keras.backend.clear_session()`` when Keras
is imported. That runs a full garbage collection and empties TensorFlow's kernel cache: about
0.5 s of work holding the GIL on this app's 2-core target, plus ~90 ms of kernel rebuilding on the
next model call, which starves the live webcam's frame callback. The app builds no models in its
scripts (they are loaded once with ``st.cache_resource``, training runs in a worker process), so
there is nothing for ``clear_session`` to free: :func:`keep_keras_state` leaves Keras alone and keeps
the rest of the clean-up (closing matplotlib figures). ``runner.postScriptGC = false`` in
.streamlit/config.toml removes the other forced collection.
"""

from __future__ import annotations

import sys


def _clean_problem_modules_except_keras() -> None:
    if "matplotlib.pyplot" in sys.modules:
        try:
            sys.modules["matplotlib.pyplot"].close("all")
        except Exception:  # noqa: BLE001 - as Streamlit does: never fail a run on clean-up
            pass


_clean_problem_modules_except_keras.fer_patch = True  # type: ignore[attr-defined]

NOT_PATCHED = ("This Streamlit has no streamlit.runtime.scriptrunner.script_runner._clean_problem_modules, the "
               "private hook ui/patches.py replaces: Keras' state is cleared after every rerun, which slows the "
               "live webcam. Install the Streamlit that requirements.txt pins, or port ui/patches.py to this one.")
"""What the app shows (and logs) when :func:`keep_keras_state` finds nothing to patch."""


HOOK = "_clean_problem_modules"
"""The private function of ``streamlit.runtime.scriptrunner.script_runner`` that the patch replaces."""


def keep_keras_state() -> bool:
    """Install the patch (idempotent); False when this Streamlit has no such hook to patch."""
    from streamlit.runtime.scriptrunner import script_runner

    current = getattr(script_runner, HOOK, None)
    if current is None:
        return False
    if not getattr(current, "fer_patch", False):
        setattr(script_runner, HOOK, _clean_problem_modules_except_keras)
    return True
