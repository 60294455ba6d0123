# Conversion stage: runs once, natively, on the build platform (never under emulation), inside
# the converter toolchain base. Named contexts: base (the toolchain image), model (the model
# folder), plugins (the user's plug-in folder). The artifact is the whole output.
FROM --platform=$BUILDPLATFORM base AS convert
ARG CONVERT_SPEC
COPY lib-convert/tf2aif /opt/tf2aif/lib/tf2aif
COPY --from=model / /src/model
COPY --from=plugins / /src/plugins
ENV PYTHONPATH=/opt/tf2aif/lib PYTHONDONTWRITEBYTECODE=1 TF_CPP_MIN_LOG_LEVEL=2
RUN /opt/tf2aif/venv/bin/python -m tf2aif.image.convert --spec "$CONVERT_SPEC" --root /src --out /out

FROM scratch
COPY --from=convert /out /
