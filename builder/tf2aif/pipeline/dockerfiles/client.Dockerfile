# Bench client image: `tf2aif bench` and `tf2aif report`, to measure the servers from inside a
# cluster, next to them. Named context: base (the bench-client base image).
FROM base
COPY lib-full/tf2aif /opt/tf2aif/lib/tf2aif
ENV PYTHONPATH=/opt/tf2aif/lib PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["/opt/tf2aif/venv/bin/python", "-m", "tf2aif", "bench"]
CMD ["--help"]
