# The bet inference server: REST on 8000, gRPC on 50051, one process.
#   docker build -t bet:0.1.0 .
#   docker run -p 8000:8000 -p 50051:50051 bet:0.1.0
# tests/deploy/test_dockerfile.py checks this file statically and replays its pip commands.

# One exact tag for both stages, so the venv built below runs on the interpreter it was built for.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU-only torch first, from the PyTorch CPU index (the image builder has internet; CI, which
# only reaches PyPI, gets the same version from its local wheel). The pin matches pyproject.toml,
# so the next step keeps this build instead of pulling the CUDA one from PyPI.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
# .dockerignore lets in only what the package needs: pyproject.toml, README.md, model/, server/.
WORKDIR /src
COPY . .
# The same install as `make install`, without the editable mode and dev tools. model/default/
# (the embedded default model) is package data, so it lands in the venv with the code.
RUN pip install .

FROM ${PYTHON_IMAGE} AS runtime
# Numeric ids so that Kubernetes' runAsNonRoot can check them (deploy/k8s uses the same).
RUN groupadd --system --gid 10001 bet \
    && useradd --system --uid 10001 --gid bet --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin bet
COPY --from=builder /opt/venv /opt/venv
# The root filesystem may be read-only (deploy/k8s): nothing is written outside /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    BET_REST_PORT=8000 \
    BET_GRPC_PORT=50051
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000 50051
# slim has no curl: ask /health/ready with the standard library; a 503 raises, so the check fails.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('BET_REST_PORT', '8000'), timeout=2)"
ENTRYPOINT ["bet", "serve", "--host", "0.0.0.0"]
# --insecure only so that a bare `docker run` starts: with no BET_AUTH_* set, bet serve refuses a
# non-loopback host. In production set BET_AUTH_* (and BET_TLS_*); any arguments replace it:
#   docker run -e BET_AUTH_JWT_SECRET=... bet:0.1.0 --host 0.0.0.0   (deploy/k8s sets its command)
CMD ["--insecure"]
