"""Live collectors for public exchange market data (Binance USDⓈ-M, Bybit v5 linear, OKX v5 swap).

One adapter module per venue turns that venue's exact REST and WebSocket
payloads into canonical rows; the shared modules do the rest: HTTP with
budgets and back-off (:mod:`.http`), WebSocket sessions with heartbeats and
reconnects (:mod:`.ws`), and the common collection logic (:mod:`.base`).
"""
