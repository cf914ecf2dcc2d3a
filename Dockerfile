# orchestrator: pg_dump once, archive to S3-compatible storage, restore into the copies.
#
# Build:  docker build -t orchestrator .
# Run:    docker run --rm --env-file .env orchestrator backup
# The default command is `run`: the schedule loop with /healthz and /metrics on HEALTH_PORT.
# Deployment recipes: docs/deploy.md.
#
# The base is pinned by version; pin it by digest too with
#   --build-arg PYTHON_IMAGE=python:3.11.17-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm

# --- PostgreSQL apt repository key, checked against its published fingerprint -------------
FROM ${PYTHON_IMAGE} AS pgdg-key
# The PostgreSQL Global Development Group's apt signing key (apt.postgresql.org).
ARG PGDG_KEY_FINGERPRINT=B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8
ARG PGDG_KEY_URL=https://www.postgresql.org/media/keys/ACCC4CF8.asc
# (SHELL after the ARGs: hadolint forgets it at an ARG.)
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Only this throwaway stage has curl and gnupg; version pins would only break the build
# when Debian ships a security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
    && rm -rf /var/lib/apt/lists/* \
    && curl -fsSL --proto '=https' --tlsv1.2 -o /pgdg.asc "$PGDG_KEY_URL" \
    && GNUPGHOME="$(mktemp -d)" && export GNUPGHOME \
    && found="$(gpg --batch --show-keys --with-colons /pgdg.asc \
        | awk -F: '$1 == "pub" { want = 1 } $1 == "fpr" && want { print $10; want = 0 }')" \
    && if [ "$found" != "$PGDG_KEY_FINGERPRINT" ]; then \
        echo "PGDG key fingerprint is '$found', expected $PGDG_KEY_FINGERPRINT" >&2; exit 1; \
    fi

# --- Build the package into a virtualenv -----------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
# Every dependency ships wheels, so no compiler is needed here either.
RUN python -m venv /opt/orchestrator \
    && /opt/orchestrator/bin/pip install --no-cache-dir . \
    && /opt/orchestrator/bin/orchestrator --version

# --- Runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="orchestrator" \
      org.opencontainers.image.description="Dumps production PostgreSQL once (pg_dump -Fc), archives it to S3-compatible storage with a manifest, and restores it into backup and dev databases." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.documentation="docs/deploy.md" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid orchestrator --create-home \
        --home-dir /home/orchestrator --shell /usr/sbin/nologin orchestrator

# PostgreSQL client tools of every supported major, side by side in
# /usr/lib/postgresql/<major>/bin, where `backup` picks the one matching each server.
# 18 is included so a provider's upgrade past 17 does not stop the backups.
ARG PG_MAJORS="14 15 16 17 18"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=pgdg-key /pgdg.asc /usr/share/keyrings/apt.postgresql.org.asc
# Versions are not pinned: apt.postgresql.org keeps only the newest minor of each major,
# and the newest minor is the one to have.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && codename="$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)" \
    && printf '%s\n' 'Types: deb' 'URIs: https://apt.postgresql.org/pub/repos/apt' \
        "Suites: ${codename}-pgdg" 'Components: main' \
        'Signed-By: /usr/share/keyrings/apt.postgresql.org.asc' \
        > /etc/apt/sources.list.d/pgdg.sources \
    && mkdir -p /usr/share/man/man1 /usr/share/man/man7 \
    && apt-get update \
    && packages=() && for major in $PG_MAJORS; do packages+=("postgresql-client-$major"); done \
    && apt-get install -y --no-install-recommends "${packages[@]}" \
    && rm -rf /var/lib/apt/lists/* \
    && for major in $PG_MAJORS; do \
        "/usr/lib/postgresql/$major/bin/pg_dump" --version \
        && "/usr/lib/postgresql/$major/bin/pg_restore" --version; \
    done

COPY --from=builder /opt/orchestrator /opt/orchestrator
COPY --chmod=0755 scripts/docker-entrypoint /usr/local/bin/docker-entrypoint

ENV PATH=/opt/orchestrator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTH_PORT=8080

USER 10001:10001
WORKDIR /home/orchestrator

# `run` serves /healthz on HEALTH_PORT (503 when no recent successful cycle). One-shot
# commands (`pipeline`, `backup`) serve nothing: orchestrators of cron jobs (Kubernetes,
# Railway) ignore this check; with plain Docker use --no-healthcheck for them.
EXPOSE 8080
HEALTHCHECK --interval=60s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/orchestrator/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HEALTH_PORT', '8080') + '/healthz', timeout=4)"]

ENTRYPOINT ["/usr/local/bin/docker-entrypoint", "orchestrator"]
CMD ["run"]
