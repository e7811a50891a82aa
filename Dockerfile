# mqttd: a static binary on a distroless base, as a non-root user.
#
#   docker build -t mqttd .
#   docker run --rm -p 1883:1883 mqttd                       # defaults: anonymous broker on :1883
#   docker run -p 1883:1883 -v mqttd-data:/var/lib/mqttd/data mqttd   # the state kept in a named volume
#   docker run --rm -p 1883:1883 -v "$PWD/mqttd.yaml:/etc/mqttd/mqttd.yaml:ro" mqttd
#
# The container runs as uid 65532 (distroless "nonroot"): every file mounted
# into it (config, password or ACL file, TLS key) must be readable by that
# user. mqttd stops at start, naming the file, when one is not (a checkout
# made under umask 077 is the usual cause: chmod a+r the file).
#
# mqttd reads /etc/mqttd/mqttd.yaml when it exists (or --config FILE). The
# admin listener (/healthz, /readyz, /metrics) binds 127.0.0.1:9180 unless
# the config says otherwise: set admin.bind: "0.0.0.0:9180" (or
# MQTTD_ADMIN_BIND) to reach it through a published port.

# The patch level go.mod's go line asks for: an older image would try to
# download that toolchain during the build, and fail offline.
FROM golang:1.26.8 AS build
WORKDIR /src
# Modules first, so this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: a fully static binary, which the distroless static image needs
# (it has no libc).
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/mqttd ./cmd/mqttd
# The store's directory, made here because distroless has no shell.
RUN mkdir -p /out/data

# Distroless has no shell and no HTTP client, so a container health check
# cannot fetch /readyz. busybox's musl build is static; installed under the
# name wget it runs only its wget applet. Drop this once mqttd can probe its
# own admin listener.
FROM busybox:1.37-musl AS probe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mqttd /usr/local/bin/mqttd
COPY --from=probe /bin/busybox /usr/local/bin/wget
# mqttd's state, under the working directory: the store (storage.dir,
# default data/store: sessions, queued and retained messages) and the
# plugins' event spools (data/events). Owned by nonroot so
# that a fresh named volume mounted there takes that owner; mount a volume
# to keep it across containers (docker run -v mqttd-data:/var/lib/mqttd/data).
COPY --from=build --chown=65532:65532 /out/data /var/lib/mqttd/data
WORKDIR /var/lib/mqttd
VOLUME /var/lib/mqttd/data
USER nonroot:nonroot
# 1883 MQTT (the default listener), 9180 admin HTTP.
EXPOSE 1883 9180
ENTRYPOINT ["/usr/local/bin/mqttd"]
