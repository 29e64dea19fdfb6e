# One image for every Switchboard process; compose (or your orchestrator) picks the subcommand
# and SWITCHBOARD_HEALTH_TARGET says what the HEALTHCHECK probes.
#
# Stage 1 installs the dependencies only (cached until pyproject.toml changes), stage 2 the code.
# The embedded Postgres/Redis (the `embedded` extra) are left out: they have no arm64 Linux
# wheels, and a container talks to real servers (DATABASE_URL, REDIS_URL).
FROM python:3.11-slim AS deps
WORKDIR /build
COPY pyproject.toml ./
RUN python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(d['project']['dependencies']))" > requirements.txt \
    && pip install --no-cache-dir --prefix=/install -r requirements.txt

FROM python:3.11-slim
WORKDIR /app
COPY --from=deps /install /usr/local
COPY pyproject.toml README.md ./
COPY switchboard ./switchboard
COPY services ./services
COPY tui ./tui
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 10001 --home-dir /app switchboard
USER 10001
ENV SWITCHBOARD_LOG_LEVEL=INFO \
    SWITCHBOARD_DATA_DIR=/tmp/switchboard \
    PYTHONUNBUFFERED=1
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["switchboard", "health"]
ENTRYPOINT ["switchboard"]
