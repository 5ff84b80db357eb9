# syntax=docker/dockerfile:1
# Herald: a static binary on a distroless, non-root base image.
#   docker build -t herald .
#   docker run --rm -p 8080:8080 herald
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/heraldpush/herald/internal/cli.version=${VERSION}" -o /out/herald ./cmd/herald

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/herald /herald
USER nonroot:nonroot
EXPOSE 8080
ENV HERALD_ADDR=:8080
# A durable store goes in /data when HERALD_DATA_DIR=/data is set (mount a volume there).
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/herald", "health"]
ENTRYPOINT ["/herald"]
CMD ["serve"]
