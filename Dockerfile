FROM python:3.11-slim
WORKDIR /opt/pipeline
COPY pyproject.toml README.md ./
COPY pipeline_assets ./pipeline_assets
COPY sql ./sql
COPY workspace.yaml dagster.yaml ./
COPY deploy ./deploy
RUN pip install --no-cache-dir -e . \
 && mkdir -p /opt/dagster_home
ENV DAGSTER_HOME=/opt/dagster_home
# Picks dagster-postgres when DAGSTER_PG_URL is set (docker-compose sets it).
CMD ["sh", "-c", "python -m pipeline_assets.dagster_home $DAGSTER_HOME && dagster-webserver -h 0.0.0.0 -p 3000 -w workspace.yaml"]
