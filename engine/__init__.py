"""liqmap engine: pure compute. Arrays in, Frames out.

No IO, no Redis, no asyncio, no logging configuration. Importable with numpy
(and optionally numba, which accelerates the hot kernels) alone.
"""
