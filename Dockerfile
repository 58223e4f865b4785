# Two stages: build with the Rust toolchain, run on a slim Debian. SQLite, libpq and
# OpenSSL are compiled into the binary, so the runtime image needs only CA certificates.
#
# By default the image is a production one: built with `--no-default-features`, so it
# has no KOMOJU sandbox at all (it then needs KOMOJU_API_BASE in development mode; in
# production that defaults to KOMOJU). For a development image with the built-in
# sandbox, build with `--build-arg CARGO_FEATURES=sandbox` (docker-compose.yml does).
FROM rust:1-bookworm AS build
ARG CARGO_FEATURES=""
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace's other members (the KOMOJU sandbox crate).
COPY crates ./crates
COPY migrations ./migrations
COPY static ./static
# Declared in Cargo.toml as targets, so present for the manifest to load.
COPY tests ./tests
COPY benches ./benches
RUN cargo build --release --locked --no-default-features --features "$CARGO_FEATURES"

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /app app
WORKDIR /app
COPY --from=build /src/target/release/cafe24-komoju /usr/local/bin/cafe24-komoju
USER app
ENV BIND_ADDR=0.0.0.0:8080
EXPOSE 8080
# Liveness (PROTOCOL.md §13): the process serves. Readiness (/health/ready: database up,
# migrations current) is for load balancers and docker-compose's depends_on.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["cafe24-komoju"]
CMD ["serve"]
