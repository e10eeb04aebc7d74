"""Numbered Redis keyspace migrations: ``NNNN_name.py`` each define ``VERSION``,
``DESCRIPTION`` and ``async def up(redis)``. Every migration is idempotent."""
