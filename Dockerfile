# Two stages: build with the Rust toolchain, run on a slim Debian. SQLite, libpq and
# OpenSSL are compiled into the binary, so the runtime image needs only CA certificates.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY static ./static
# Declared in Cargo.toml as targets, so present for the manifest to load.
COPY tests ./tests
COPY benches ./benches
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /app app
WORKDIR /app
COPY --from=build /src/target/release/cafe24-komoju /usr/local/bin/cafe24-komoju
USER app
ENV BIND_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["cafe24-komoju"]
CMD ["serve"]
