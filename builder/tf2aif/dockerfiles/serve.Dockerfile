# Server image: the runtime base of each target platform + the converted artifact + the tf2aif
# server. Named contexts: base (runtime base image), artifact (the conversion target's output).
FROM base
ARG TF2AIF_MAX_BATCH_SIZE=8
ARG TF2AIF_MAX_QUEUE_DELAY_MS=2
ARG TF2AIF_MAX_QUEUE_SIZE=256
ARG TF2AIF_THREADS=
COPY --from=artifact / /opt/tf2aif/model
COPY lib-serve/tf2aif /opt/tf2aif/lib/tf2aif
ENV PYTHONPATH=/opt/tf2aif/lib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TF2AIF_MAX_BATCH_SIZE=${TF2AIF_MAX_BATCH_SIZE} \
    TF2AIF_MAX_QUEUE_DELAY_MS=${TF2AIF_MAX_QUEUE_DELAY_MS} \
    TF2AIF_MAX_QUEUE_SIZE=${TF2AIF_MAX_QUEUE_SIZE} \
    TF2AIF_THREADS=${TF2AIF_THREADS}
USER 10001:10001
# 8080: HTTP, 8081: gRPC (both the Open Inference Protocol)
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["/opt/tf2aif/venv/bin/python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["/opt/tf2aif/venv/bin/python", "-m", "tf2aif.server", "/opt/tf2aif/model", "--host", "0.0.0.0", "--port", "8080"]
