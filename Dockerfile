# syntax=docker/dockerfile:1
# hookd image: one static binary; the command picks the role
# (api | worker | migrate | dev), see docker-compose.yml.

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags='-s -w' -o /out/hookd ./cmd/hookd

FROM debian:bookworm-slim
# ca-certificates: webhook targets are mostly https (bash, used by the
# compose healthcheck, is already in the base image).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hookd
COPY --from=build /out/hookd /usr/local/bin/hookd
USER 10001:10001
ENV HOOKD_HTTP_ADDR=0.0.0.0:8080
# Goroutines start at the average stack size (hookd CPU per delivery -10 %; README Performance).
ENV GODEBUG=adaptivestackstart=1
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/hookd"]
CMD ["api"]
