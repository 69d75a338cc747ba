# Image of Arco's worker processes (`arco worker ...`); see docker-compose.yml.
FROM python:3.11-slim
WORKDIR /opt/arco
COPY pyproject.toml README.md ./
COPY src ./src
COPY examples ./examples
RUN pip install --no-cache-dir '.[s3]'
ENTRYPOINT []
CMD ["arco", "worker", "control-plane"]
