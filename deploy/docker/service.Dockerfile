# Every duochat service's image: one Dockerfile, the service chosen by build arguments.
# Build context: the repository root (only what an image may need goes in: /.dockerignore)
#   docker build -f deploy/docker/service.Dockerfile \
#     --build-arg SERVICE=auth --build-arg PORT=8001 -t duochat-auth .
# SERVICE and PORT are a service of the route table and its port (duochat_common.routing);
# compose and the CDK stack pass them from it.

FROM python:3.11.13-slim-bookworm AS builder
ARG SERVICE
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY libs/common libs/common
# Only this service goes in, so a change to another one leaves this image's layers alone.
COPY services/${SERVICE} services/${SERVICE}
# --frozen: exactly the versions of uv.lock; --no-editable: the venv stands alone without /src.
RUN test -n "${SERVICE}" \
    && uv sync --frozen --no-dev --no-editable --package "duochat-${SERVICE}"

FROM python:3.11.13-slim-bookworm
ARG SERVICE
ARG PORT
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DUOCHAT_SERVICE=${SERVICE} \
    PORT=${PORT}
RUN groupadd --system --gid 10001 duochat \
    && useradd --system --uid 10001 --gid duochat --home-dir /app --shell /usr/sbin/nologin duochat
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
COPY deploy/docker/serve.py /app/serve.py
USER 10001:10001
EXPOSE ${PORT}
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "/app/serve.py", "healthcheck"]
# uvicorn stops accepting on SIGTERM, closes WebSockets and SSE streams (clients reconnect to
# another task) and exits within --timeout-graceful-shutdown, before the runtime's SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "/app/serve.py"]
