"""What can go wrong talking to a venue, as one small hierarchy."""

from __future__ import annotations


class VenueError(Exception):
    """A call to a venue did not produce usable data."""

    def __init__(self, venue: str, endpoint: str, message: str) -> None:
        super().__init__(f"{venue} {endpoint}: {message}")
        self.venue = venue
        self.endpoint = endpoint


class BadPayload(VenueError):
    """The venue answered, but not in the documented format (HTML, truncated JSON, wrong types, bad values)."""


class RateLimited(VenueError):
    """The venue asked us to slow down (429/418/403, or a rate-limit code); no call until ``until_ms`` (epoch ms, on the collector's clock)."""

    def __init__(self, venue: str, endpoint: str, message: str, until_ms: int) -> None:
        super().__init__(venue, endpoint, message)
        self.until_ms = until_ms


class VenueUnavailable(VenueError):
    """The venue could not be reached or failed on its side (connection refused, timeout, 5xx)."""


class VenueRejected(VenueError):
    """The venue refused the request itself (unknown symbol, bad parameter)."""
