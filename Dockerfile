# batchrek: slim, non-root, signals reach the process.
FROM python:3.11-slim

# tini is PID 1: it forwards SIGTERM to batchrek (which then stops reading the
# manifest, lets in-flight calls finish within --grace-period-s and exits 143) and
# reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin batchrek

WORKDIR /app
COPY pyproject.toml README.md ./
COPY batchrek ./batchrek
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER 10001:10001
WORKDIR /home/batchrek
ENV PYTHONUNBUFFERED=1
# Exec form: no shell in between to swallow signals.
ENTRYPOINT ["/usr/bin/tini", "--", "batchrek"]
CMD ["--help"]
