"""The HTTP API (Litestar): native v1 routes and the Coinglass-compatible surface."""
