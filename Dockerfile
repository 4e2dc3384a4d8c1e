# syntax=docker/dockerfile:1
# The image of every parkleit service (docker-compose.yml): `parkleit <command>`.
# Build: docker build -t parkleit .   Run: docker run --rm parkleit --help

# The web pages' browser libraries and Swagger UI (api/static/package.json), served from
# node_modules. No install scripts (api/static/.npmrc says why).
FROM node:22-slim AS pages
WORKDIR /pages
COPY api/static/package.json api/static/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error

FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
COPY --from=pages /pages/node_modules api/static/node_modules
# Wheels of parkleit and of every dependency, so the runtime stage installs without an index
# and without build tools.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels parkleit \
    && groupadd --system --gid 10001 parkleit \
    && useradd --system --uid 10001 --gid parkleit --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin parkleit
# City configs: installed parkleit looks for names next to its package, so the services name
# their config by path (PARKLEIT_CITY=/app/cities/zeitz.toml); compose mounts ./cities here.
WORKDIR /app
COPY cities /app/cities
USER parkleit
ENTRYPOINT ["parkleit"]
CMD ["--help"]
