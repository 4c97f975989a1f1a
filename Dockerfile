# One image for the edge, the store and every example service (docker-compose.yml
# picks the command): `band edge`, `band store run`, or `band run examples/<name>`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    JSON_LOGS=1

WORKDIR /app

# The package first (its layer is reused while only examples change).
COPY pyproject.toml README.md* ./
COPY band ./band
COPY broker ./broker
RUN pip install ".[examples,redis,store]"   # store: chDB for `band store` (about 180 MB)

COPY examples ./examples

# Not root; /data is where the store and stateful examples keep files (a volume in compose).
RUN useradd --system --uid 10001 --home-dir /app band \
    && mkdir -p /data \
    && chown band /data
USER band

EXPOSE 8080
# SIGTERM drains: the edge finishes in-flight hits, services finish requests.
STOPSIGNAL SIGTERM
CMD ["band", "edge"]
