# The serving install: `serve` on ONNX Runtime and the tokenizers library, without torch or transformers.
# Artifacts are made elsewhere (`compress run`, mlm-compress[compress]) and mounted with models.yaml:
#
#   docker build -t mlm-serve .
#   docker run -p 8000:8000 -v $PWD/models.yaml:/srv/models.yaml:ro -v $PWD/artifacts:/srv/artifacts:ro mlm-serve
#
# A missing artifact is an error here (--no-compress): this image cannot compress. Only the product is
# copied in: no tests, no benchmarks (the load client and process helpers live there).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

WORKDIR /build
COPY pyproject.toml README.md ./
COPY compress ./compress
COPY serve ./serve
RUN pip install . && rm -rf /build

RUN useradd --create-home --uid 10001 serve
USER serve
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
ENTRYPOINT ["serve", "--config", "/srv/models.yaml", "--host", "0.0.0.0", "--port", "8000", "--no-compress"]
