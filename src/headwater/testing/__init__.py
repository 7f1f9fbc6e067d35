"""Test and benchmark support that ships with headwater: a PyPI-like upstream on loopback."""
