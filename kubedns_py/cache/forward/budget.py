"""``--dns-forward-max`` shared fairly among routes, so one dead or slow upstream cannot starve the rest.

Half the budget is reserved, split evenly among the routes that forward (at least one slot each); the
other half is a pool any route borrows from, first come first served. A route takes from its reserve
first and from the pool when its reserve is in use; a route with neither gets no slot (the caller
answers SERVFAIL at once). So a route holds at most its reserve plus the pool, and every other route
always has its whole reserve: with the default 150 and the kube-dns routes (cluster.local,
in-addr.arpa, ip6.arpa, the default upstreams) each keeps 18 slots and one can hold at most 96.
"""

from __future__ import annotations

from collections.abc import Iterable


class Share:
    """One route's part of the budget: slots in use from its reserve, slots borrowed from the pool,
    and questions turned away."""

    __slots__ = ("borrowed", "name", "own", "rejected")

    def __init__(self, name: str) -> None:
        self.name = name
        self.own = 0
        self.borrowed = 0
        self.rejected = 0


class ForwardBudget:
    def __init__(self, total: int, routes: Iterable[str]) -> None:
        self.total = total
        self.reserve = 1
        self.pool = 0
        self.pool_used = 0
        self.inflight = 0
        self.shares: dict[str, Share] = {}
        self.set_routes(routes)

    def set_routes(self, routes: Iterable[str]) -> None:
        """Split the budget among a new set of routes. A route that stays keeps its share and counts;
        slots of a dropped route come back when its questions end."""
        names = list(dict.fromkeys(routes))
        self.shares = {name: self.shares.get(name) or Share(name) for name in names}
        self.reserve = max(1, self.total // (2 * max(1, len(names))))
        self.pool = max(0, self.total - self.reserve * len(names))

    def take(self, route: str) -> Share | None:
        """A slot for a question on ``route`` (hand it back with ``give_back``), or None: out of share."""
        share = self.shares[route]
        if share.own < self.reserve:
            share.own += 1
        elif self.pool_used < self.pool:
            share.borrowed += 1
            self.pool_used += 1
        else:
            share.rejected += 1
            return None
        self.inflight += 1
        return share

    def give_back(self, share: Share) -> None:
        # Borrowed slots go back first: the pool is what the other routes can use.
        if share.borrowed:
            share.borrowed -= 1
            self.pool_used -= 1
        else:
            share.own -= 1
        self.inflight -= 1
