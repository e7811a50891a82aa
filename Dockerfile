# mqttd: a static binary on a distroless base, as a non-root user.
#
#   docker build -t mqttd .
#   docker run --rm -p 1883:1883 mqttd                       # defaults: anonymous broker on :1883
#   docker run --rm -p 1883:1883 -v "$PWD/mqttd.yaml:/etc/mqttd/mqttd.yaml:ro" mqttd
#
# mqttd reads /etc/mqttd/mqttd.yaml when it exists (or --config FILE). The
# admin listener (/healthz, /readyz, /metrics) binds 127.0.0.1:9180 unless
# the config says otherwise: set admin.bind: "0.0.0.0:9180" (or
# MQTTD_ADMIN_BIND) to reach it through a published port.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: a fully static binary, which the distroless static image needs
# (it has no libc).
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/mqttd ./cmd/mqttd

# Distroless has no shell and no HTTP client, so a container health check
# cannot fetch /readyz. busybox's musl build is static; installed under the
# name wget it runs only its wget applet. Drop this once mqttd can probe its
# own admin listener.
FROM busybox:1.37-musl AS probe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mqttd /usr/local/bin/mqttd
COPY --from=probe /bin/busybox /usr/local/bin/wget
USER nonroot:nonroot
# 1883 MQTT (the default listener), 9180 admin HTTP.
EXPOSE 1883 9180
ENTRYPOINT ["/usr/local/bin/mqttd"]
