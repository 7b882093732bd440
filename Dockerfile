FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY settings.py worker.py ./
COPY canonical ./canonical
COPY adapters ./adapters
COPY activities ./activities
COPY workflows ./workflows
COPY starter ./starter
RUN pip install --no-cache-dir .
ENV O2C_STATE_DIR=/var/lib/o2c
CMD ["o2c", "worker"]
