"""Regenerate the screenshots in docs/screenshots/ from the current shipped model.

    python scripts/screenshots.py                 # every page (a few minutes on 2 cores)
    python scripts/screenshots.py -k analyze      # only the tests whose name matches (pytest -k)
    python scripts/screenshots.py --model models/other.keras --out /tmp/shots

It runs the browser tests in tests/e2e against ``streamlit run app.py`` on a copy of the model
(``FER_E2E_MODEL``), with Debian's Chromium driven by Playwright and a fake camera playing a real
photograph (``--use-file-for-fake-video-capture``), and lets them write their screenshots into
``--out`` (``FER_SCREENSHOTS``). So every screenshot comes from a run whose checks passed: faces found,
no exception, downloads working. Needs ``pip install -r requirements-dev.txt`` and ``apt-get install
chromium`` (or ``FER_CHROMIUM``). Exits non-zero, and names the stale files, when a test fails or a
screenshot was not rewritten.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHOTS = ("home.png", "analyze.png", "explain.png", "video.png", "live.png", "calibrate.png", "train.png",
         "train_running.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(REPO / "models" / "fer_default.keras"), help="model to show")
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshots"), help="folder for the PNG files")
    parser.add_argument("-k", dest="select", help="only the e2e tests matching this pytest -k expression")
    args = parser.parse_args(argv)
    chromium = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).is_file():
        print(f"error: no Chromium at {chromium} (apt-get install chromium, or set FER_CHROMIUM)", file=sys.stderr)
        return 2
    model, out = Path(args.model).resolve(), Path(args.out).resolve()
    if not model.is_file():
        print(f"error: no model at {model}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FER_E2E_MODEL": str(model), "FER_SCREENSHOTS": str(out), "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e"]
    if args.select:
        cmd += ["-k", args.select]
    start = time.time()
    done = subprocess.run(cmd, cwd=REPO, env=env, check=False)
    fresh = sorted(p.name for p in out.glob("*.png") if p.stat().st_mtime >= start)
    stale = [name for name in SHOTS if (out / name).is_file() and name not in fresh]
    print(f"rewritten in {out}: {', '.join(fresh) or 'none'} ({time.time() - start:.0f} s)")
    if stale and not args.select:
        print(f"not rewritten (stale): {', '.join(stale)}", file=sys.stderr)
    return done.returncode or (1 if stale and not args.select else 0)


if __name__ == "__main__":
    sys.exit(main())
