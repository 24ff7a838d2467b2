# syntax=docker/dockerfile:1
# The operator image: one static-enough binary on distroless, running as uid 65532.
#
#   docker build -t ghcr.io/crm-risk-operator/crmrisk:0.1.0 .
#
# The Rego library (policies/) and its rule metadata are compiled into the binary by
# operator/build.rs, so the final image holds nothing but /crmrisk.

ARG RUST_VERSION=1.95

# The builder's Debian release must match the runtime's (bookworm = debian12): the binary links
# against glibc, which must not be newer at build time than at run time.
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The whole workspace: Cargo needs every member's manifest (tests/ is the e2e test bed), and
# build.rs embeds policies/.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p crmrisk --bin crmrisk \
    && install -D -m 0755 target/release/crmrisk /out/crmrisk

# distroless/cc: glibc and libgcc, no shell, no package manager; the :nonroot tag runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/crmrisk /crmrisk
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/crmrisk"]
CMD ["run"]
