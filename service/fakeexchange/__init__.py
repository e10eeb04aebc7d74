"""A fake exchange: real HTTP + WebSocket servers on 127.0.0.1 speaking Binance's, Bybit's and OKX's formats.

Tests drive the collectors against it; users can run ``liqmap serve --fake-exchange``
(or ``liqmap fake-exchange``) to try everything offline. The market behind it is the
synthetic market (same prices on every venue, venue-sized open interest and volume),
played at the pace of a clock; faults are injected per request or by a named scenario.
"""

from service.fakeexchange.market import VenueMarket
from service.fakeexchange.server import Fault, FakeExchange, FakeVenue

__all__ = ["Fault", "FakeExchange", "FakeVenue", "VenueMarket"]
