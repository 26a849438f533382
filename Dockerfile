# edgetasks image: `edge agent` by default; `edge up`, `edge ui`, `edge broker` by command.
# `edge up` / `edge broker` here listen on 0.0.0.0 (EDGE_BROKER_HOST below), so they need EDGE_USERNAME and
# EDGE_PASSWORD, or EDGE_BROKER_ANONYMOUS=true with the port published on loopback (docs/security.md).
# Every setting is an EDGE_* environment variable (docs/settings.md); state lives in /data.
# Builds for linux/amd64 and linux/arm64 alike: every step is the same on both.
ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS build
# the extras baked in: the control panel, schedule (croniter) and the web types (httpx, which the panel
# brings anyway); PyAV for media tasks adds ~60 MB (EXTRAS=ui,flow,web,media)
ARG EXTRAS=ui,flow,web
WORKDIR /src
COPY pyproject.toml README.md ./
COPY edge edge
COPY agent agent
COPY ui ui
COPY tasks tasks
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[${EXTRAS}]"

FROM python:${PYTHON}-slim
# the same extras as the build stage: without them `edge ui` in the image has no NiceGUI
ARG EXTRAS=ui,flow,web
# Mosquitto is the broker of `edge up` / `edge broker` in a container (the embedded broker's
# wheel does not exist for every architecture); no compilers or build tools in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends mosquitto=2.* \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 edge \
 && mkdir /data && chown edge /data
COPY --from=build /wheels /wheels
# the wheels built above are the pinned set: nothing comes from an index here
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links /wheels "edgetasks[${EXTRAS}]" && rm -rf /wheels
USER 10001
ENV EDGE_DATA_DIR=/data \
    EDGE_BROKER_HOST=0.0.0.0 \
    EDGE_CONTROLLER_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1 \
    MALLOC_TOP_PAD_=67108864
VOLUME ["/data"]
EXPOSE 1883 8080
# healthy while the agent is connected to its broker (it writes /data/agents/<id>/health.json)
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["edge", "health"]
ENTRYPOINT ["edge"]
CMD ["agent"]
