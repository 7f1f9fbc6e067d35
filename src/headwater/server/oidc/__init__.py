"""Trusted publishing: CI jobs exchange an OIDC token for a short-lived upload token.

- :mod:`~headwater.server.oidc.tokens`: reading and verifying the OIDC token (pure);
- :mod:`~headwater.server.oidc.claims`: does it describe a configured publisher (pure);
- :mod:`~headwater.server.oidc.keys`: the issuers' signing keys, fetched and cached;
- :mod:`~headwater.server.oidc.exchange`: the exchange, step by step;
- :mod:`~headwater.server.oidc.endpoints`: PyPI's endpoints and PEP 807's discovery.

The publishers themselves, the minted tokens and the publishing log are in the database
(:mod:`headwater.db.publishers`, :mod:`headwater.db.minting`). See docs/trusted-publishing.md.
"""

from __future__ import annotations

from headwater.server.oidc.endpoints import oidc_routes
from headwater.server.oidc.exchange import Exchange
from headwater.server.oidc.keys import IssuerUnavailable, KeyCache, http_fetcher

__all__ = ["Exchange", "IssuerUnavailable", "KeyCache", "http_fetcher", "oidc_routes"]
