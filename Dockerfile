# One image for every Switchboard process; the compose file picks the subcommand.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY switchboard ./switchboard
COPY services ./services
COPY tui ./tui
RUN pip install --no-cache-dir .
ENV SWITCHBOARD_LOG_LEVEL=INFO
ENTRYPOINT ["switchboard"]
