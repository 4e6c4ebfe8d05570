# syntax=docker/dockerfile:1
# Caravan's Orthanc: Debian's packages (the same Orthanc, plugins and Python the platform is
# developed and tested against), configured at start by dicom/orthanc/launcher.py.
# Build from the repository root: docker build -f docker/orthanc.Dockerfile .
FROM debian:bookworm-slim

ARG DEBIAN_FRONTEND=noninteractive
# policy-rc.d stops the orthanc package's postinst from starting the stock service during the
# build; the container runs its own Orthanc with the launcher's configuration.
# python3: the launcher, and the standard library the Python plugin's interpreter imports.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d \
    && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        orthanc orthanc-python orthanc-dicomweb orthanc-postgresql python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*

COPY dicom/orthanc/ /opt/caravan/dicom/orthanc/
COPY docker/orthanc_entrypoint.py /opt/caravan/orthanc_entrypoint.py

# TCP_NODELAY: DCMTK (Orthanc's DICOM stack) reads it; without it every small DIMSE message
# waits on Nagle's algorithm and each C-STORE from a van pays a delayed-ACK round trip.
# The code is root-owned and read-only to Orthanc, so nothing writes bytecode next to it.
ENV TCP_NODELAY=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ORTHANC_RUN_DIR=/var/lib/orthanc/caravan

# The run directory holds the rendered configuration (with secrets) and storage/, the DICOM
# files; created here so a fresh named volume mounted on storage/ inherits owner and mode 0700.
RUN install -d -o orthanc -g orthanc -m 0700 /var/lib/orthanc/caravan /var/lib/orthanc/caravan/storage
USER orthanc:orthanc
WORKDIR /var/lib/orthanc/caravan

EXPOSE 8042 4242

# A 200 from /system with the platform's credentials proves HTTP, auth and the index are up.
HEALTHCHECK --interval=10s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import sys; sys.path.insert(0, '/opt/caravan'); from dicom.orthanc import launcher as l; c = l.config_from_env(); l.probe(c.url, c.username, c.password, timeout=5)"]

# `run` execs Orthanc in place of the launcher, so `docker stop`'s SIGTERM reaches Orthanc
# itself and it closes its index and storage cleanly.
ENTRYPOINT ["python3", "/opt/caravan/orthanc_entrypoint.py", "run"]
