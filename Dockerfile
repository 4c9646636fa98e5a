# The FER app on CPU: docker build -t fer-app . && docker run --rm -p 8501:8501 fer-app
# (then open http://localhost:8501). Hosting (Hugging Face Spaces, Cloud Run, ...) and GPUs: docs/deploy.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    FER_MODELS_DIR=/data/models \
    FER_DATA_DIR=/data/fer2013 \
    FER_WORK_DIR=/tmp/fer-app \
    FER_CACHE_DIR=/data/cache

# libglib2.0-0: OpenCV's core library links against it; everything else ships in the wheels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The same install as the README: the lock, every package pinned (the face detector's weights ship in fer/assets).
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# uid 1000: the user Hugging Face Spaces runs containers as (docs/deploy.md); it writes the Live page's
# in-browser models into ui/browser_live/build/models (docs/browser_live.md)
RUN useradd --create-home --uid 1000 fer \
    && mkdir -p /data/models /data/fer2013 /data/cache /app/ui/browser_live/build/models \
    && chown -R fer:fer /data /app/ui/browser_live/build/models
USER fer
VOLUME ["/data"]

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"

CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
