FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CDS_KNOWLEDGE_DIR=/app/plan_definitions \
    CDS_STATE_DIR=/tmp/cds-state
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
COPY plan_definitions ./plan_definitions
COPY config ./config
RUN pip install --no-cache-dir . && useradd --system --uid 10001 cds
USER cds
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
CMD ["cds-service", "serve", "--host", "0.0.0.0", "--port", "8080"]
