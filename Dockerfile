# The opea-chat web app (the Streamlit chat page) as an image, for stacks exported with
# `opea-chat export compose`. The app talks to the OPEA megaservice named by
# OPEA_CHAT_MEGASERVICE_URL.
#
#   docker build -t opea-chat/app:0.1.0 .
#
# BASE: any image with Python 3.11+ and its venv module (a Debian or Ubuntu base, say).
# PIP_OPTIONS: extra pip options, e.g. "--no-index" where the base already has the packages.
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG PIP_OPTIONS=""

WORKDIR /opt/opea-chat
COPY app/requirements.txt app/requirements.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check ${PIP_OPTIONS} \
        -r app/requirements.txt
COPY launcher/ launcher/
COPY opea/ opea/
COPY models/ models/
COPY app/ app/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/opea-chat \
    PYTHONUNBUFFERED=1 \
    OPEA_CHAT_HOME=/data \
    OPEA_CHAT_MEGASERVICE_URL=http://megaservice:8888
RUN useradd --create-home --uid 1000 chat && mkdir -p /data && chown chat /data
USER chat
EXPOSE 8501
HEALTHCHECK --interval=5s --timeout=5s --retries=12 \
    CMD ["/opt/venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"]
CMD ["/opt/venv/bin/streamlit", "run", "app/server.py", \
     "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true", \
     "--server.fileWatcherType=none", "--browser.gatherUsageStats=false", \
     "--client.toolbarMode=viewer"]
