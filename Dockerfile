# syntax=docker/dockerfile:1
# Build the single binary in one stage; ship it alone on a slim glibc base, as a non-root user.

FROM oven/bun:1.4.4 AS build
WORKDIR /src
COPY package.json bun.lock bunfig.toml tsconfig.json ./
RUN bun install --frozen-lockfile --production --ignore-scripts
COPY src ./src
RUN bun build --compile --minify src/main.ts --outfile /out/agentkit

FROM debian:bookworm-slim
# CA roots for HTTPS to LLM providers; nothing else is needed at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin agentkit \
 && mkdir -p /data && chown agentkit:agentkit /data
COPY --from=build /out/agentkit /usr/local/bin/agentkit
USER agentkit
WORKDIR /data
ENV AGENTKIT_HOST=0.0.0.0 \
    PORT=8000 \
    AGENTKIT_DATA_DIR=/data
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 CMD ["agentkit", "healthcheck"]
ENTRYPOINT ["agentkit"]
CMD ["serve"]
