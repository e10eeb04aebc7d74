FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LIQMAP_HOST=0.0.0.0 \
    LIQMAP_PORT=8000 \
    LIQMAP_DATA_DIR=/home/liqmap/data \
    NUMBA_CACHE_DIR=/home/liqmap/.numba-cache

WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY service ./service
COPY migrations ./migrations
RUN pip install . && useradd --create-home liqmap
USER liqmap

EXPOSE 8000
CMD ["liqmap", "serve"]
