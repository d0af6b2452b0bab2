# devicegate: one static binary in an image FROM scratch, run as a non-root
# user, with its state in the /data volume. Every role is the same image
# with another command (serve, proxy, backoffice, admin, ...); see
# docker-compose.yml and configs/compose/.
#
#   docker build -t devicegate .
#
# Without network access to a registry (the test, TestContainerFlow), the
# final stage takes a binary built on the host instead of the Go stage:
#
#   CGO_ENABLED=0 go build -o CTX/rootfs/usr/local/bin/devicegate ./cmd/devicegate
#   mkdir CTX/data
#   podman build --format docker --build-arg BINARY=host -f Dockerfile CTX
#
# (--format docker: the OCI format has no HEALTHCHECK.)

ARG GO_VERSION=1.26
# build: compile in the golang image; host: take rootfs/ and data/ from the
# build context.
ARG BINARY=build

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO off: a static binary (SQLite is modernc.org/sqlite, pure Go).
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /rootfs/usr/local/bin/devicegate ./cmd/devicegate \
    && mkdir -p /data /rootfs/etc/ssl/certs \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/

FROM scratch AS host
COPY rootfs/ /rootfs/
COPY data/ /data/

FROM ${BINARY} AS binary

FROM scratch
COPY --from=binary /rootfs/ /
# The state (CA directory, policy snapshot, TLS cache) belongs to the user
# the roles run as; nothing else in the image is writable by it.
COPY --from=binary --chown=65532:65532 /data /data
USER 65532:65532
VOLUME ["/data"]
WORKDIR /data
# Each role's listeners: DEVICEGATE_HEALTH_URLS (space-separated http(s)
# URLs, every one must answer 2xx) and DEVICEGATE_HEALTH_ROOT (the CA root
# that verifies https), set per service in docker-compose.yml.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/devicegate", "health"]
ENTRYPOINT ["/usr/local/bin/devicegate"]
CMD ["--help"]
