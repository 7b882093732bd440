FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY o2c ./o2c
RUN pip install --no-cache-dir .
ENV O2C_STATE_DIR=/var/lib/o2c
CMD ["o2c", "worker"]
