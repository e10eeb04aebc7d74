"""liqmap service: everything that touches the world (store, sources, scheduler, API, CLI)."""
