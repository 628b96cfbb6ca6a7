# borderwatch: `borderwatch run` with the database on a volume and config mounted read-only.
#   docker build -t borderwatch .
#   docker run -d --name borderwatch -v borderwatch-data:/data \
#     -v "$PWD/feeds.yaml:/config/feeds.yaml:ro" -v "$PWD/keywords.yaml:/config/keywords.yaml:ro" \
#     -e SMTP_HOST=smtp.example.org -e SMTP_USER=... -e SMTP_PASSWORD=... -e DIGEST_FROM=alerts@example.org \
#     borderwatch
# The image also carries the `postgres` extra (psycopg, procrastinate): with BORDERWATCH_DB set to a
# postgresql:// URL the same image is a cluster member; compose.yaml runs PostgreSQL and N of them.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BORDERWATCH_DB=/data/borderwatch.db \
    BORDERWATCH_FEEDS=/config/feeds.yaml \
    BORDERWATCH_KEYWORDS=/config/keywords.yaml

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
RUN pip install ".[metrics,postgres]"

COPY feeds.yaml keywords.yaml /config/
RUN useradd --create-home --uid 10001 borderwatch \
    && mkdir -p /data/outbox \
    && chown -R borderwatch:borderwatch /data \
    && chmod 0700 /data/outbox
USER borderwatch
WORKDIR /data
VOLUME ["/data"]

HEALTHCHECK --interval=60s --timeout=10s --start-period=60s --retries=3 \
    CMD ["borderwatch", "status", "--check"]

CMD ["borderwatch", "run", "--log-format", "json"]
