# The local stand-in for the official python:3.11-slim-bookworm image, for machines that reach no
# image registry (CI here): a debootstrapped Debian bookworm (imported by scripts/local-base-image.sh)
# with Debian's Python 3.11 in a venv that comes first on PATH, so `python` and `pip` behave as in
# the official image. The host's extra CA certificates are copied in at build time (never committed).
ARG ROOTFS_IMAGE=mlops-local/bookworm-minbase:latest
FROM ${ROOTFS_IMAGE}

ENV LANG=C.UTF-8 \
    PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

COPY certs/ /usr/local/share/ca-certificates/
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates \
    && update-ca-certificates \
    && python3 -m venv /opt/python \
    && /opt/python/bin/python -m pip install --no-cache-dir --upgrade pip==25.3 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

CMD ["python3"]
