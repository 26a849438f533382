# edgetasks: `edge agent` by default; `edge up`, `edge ui`, `edge broker` by command.
# Every setting is an EDGE_* environment variable (docs/settings.md). The shipping issue
# finishes this image (health check, multi-arch notes); it builds and runs as it is.
ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS build
ARG EXTRAS=broker,ui
WORKDIR /src
COPY pyproject.toml README.md ./
COPY edge edge
COPY agent agent
COPY ui ui
COPY tasks tasks
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[${EXTRAS}]"

FROM python:${PYTHON}-slim
RUN useradd --create-home --uid 10001 edge && mkdir /data && chown edge /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels edgetasks && rm -rf /wheels
USER edge
ENV EDGE_DATA_DIR=/data \
    EDGE_BROKER_HOST=0.0.0.0 \
    EDGE_CONTROLLER_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 1883 8080
ENTRYPOINT ["edge"]
CMD ["agent"]
