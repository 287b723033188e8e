# quicsrv in a container: a static binary on distroless, run as a non-root
# user. Build it with `make docker` (which passes the version and commit),
# or: docker build --build-arg VERSION=v1.2.3 --build-arg COMMIT=0123abcd -t quicsrv .
# Without Docker, `make docker-check` builds the same binary the same way
# (make release) and checks it is static and stamped.
#
# Run: docker run -p 4433:4433/udp -p 9464:9464 -v quicsrv:/var/lib/quicsrv quicsrv
# The state volume holds the development certificates (.quicmsg/dev-certs)
# created on first start; for production, mount real ones and pass -cert
# and -key, or a config file: -config /etc/quicsrv/quicsrv.toml.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG COMMIT=unknown
# The same target make docker-check builds: CGO_ENABLED=0, -trimpath and
# the version and commit stamped with -ldflags -X.
RUN make release VERSION="$VERSION" COMMIT="$COMMIT" && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/release/quicsrv /src/bin/release/quiccli /usr/local/bin/
# The state directory belongs to the image's non-root user (65532), so that
# quicsrv can create its development certificates there.
COPY --from=build --chown=65532:65532 /out/state /var/lib/quicsrv
USER 65532:65532
WORKDIR /var/lib/quicsrv
VOLUME ["/var/lib/quicsrv"]
# QUIC (UDP) and the metrics and status listener (TCP).
EXPOSE 4433/udp 9464/tcp
ENTRYPOINT ["/usr/local/bin/quicsrv"]
CMD ["-addr", "0.0.0.0:4433", "-metrics", "0.0.0.0:9464", "-log-format", "json"]
