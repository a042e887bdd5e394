# syntax=docker/dockerfile:1
# The gitops-agent image: one static (musl) binary, CA certificates, nothing else.
# Without network access to pull rust:alpine, scripts/image builds the same layout from a
# static binary built on the host (Containerfile.local).
#
#   docker build -t ghcr.io/kubectl-gitops/gitops-agent:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t … --push .
#
# Alpine's Rust is musl-native, so the build needs no cross toolchain and the result is
# static (Rust links musl targets statically); git2 vendors libgit2 and OpenSSL. Each
# --platform builds natively (under emulation when it is not the builder's).

FROM rust:1.95.0-alpine AS build
# perl and make build the vendored OpenSSL; linux-headers its includes; ca-certificates the
# bundle copied into the final image.
RUN apk add --no-cache musl-dev perl make linux-headers ca-certificates
# rust-toolchain.toml pins the same version; naming it here keeps rustup from downloading the
# toolchain's extra components (rustfmt, clippy) that a release build does not use.
ENV RUSTUP_TOOLCHAIN=1.95.0 \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile agent-release --locked -p agent --bin gitops-agent \
      --config 'profile.agent-release.strip="symbols"' \
 && install -D -m 0755 target/agent-release/gitops-agent /out/gitops-agent
# What FROM scratch lacks: a user for 65532 (libgit2/libssh2 look the user up), and the
# directories the agent writes, owned by it, for runs without the Deployment's emptyDirs.
RUN mkdir -p /out/etc/ssl/certs /out/tmp /out/var/cache/gitops-agent \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && echo 'nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin' >/out/etc/passwd \
 && echo 'nonroot:x:65532:' >/out/etc/group \
 && chown 65532:65532 /out/tmp /out/var/cache/gitops-agent \
 && chmod 1777 /out/tmp

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.source="https://github.com/kubectl-gitops/kubectl-gitops" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.title="gitops-agent" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /
# The vendored OpenSSL's compiled-in certificate directory does not exist here.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    HOME=/tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/gitops-agent"]
