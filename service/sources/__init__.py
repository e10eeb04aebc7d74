"""Market data sources: the synthetic market and (later) exchange collectors."""
