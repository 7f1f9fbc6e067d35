"""``headwater serve``: the ASGI index server for mirrored trees and hosted indexes."""
