"""``--dns-forward-max`` shared fairly among routes, so one dead or slow upstream cannot starve the rest.

Each route counts against a group. The routes the flags name (``--server=/domain/``: in kube-dns's pod
cluster.local and the reverse zones) and the default upstreams are groups of their own, *pinned*; the
ConfigMap's stub domains are grouped by their servers, so stub domains naming the same servers share
one part.

Half the budget is reserved: split evenly among the pinned groups and, counted together as one more,
the stub groups (at least one slot for each pinned group; a stub group's part of their one share may
round to none). So whatever the ConfigMap holds, cluster.local keeps the same reserve, and the stub
domains can never reserve the pool away. The rest is a pool any group borrows from once its reserve is
in use, first come first served; a group with neither gets no slot (the caller answers SERVFAIL at
once). So a group holds at most its reserve plus the pool, and every other group always has its whole
reserve: with the default 150 and the kube-dns routes (cluster.local, in-addr.arpa, ip6.arpa, the
default upstreams) each keeps 18 slots and one can hold at most 96; add any number of stub domains and
those four keep 15 each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Group:
    """The part of the budget a route counts against: ``key`` names it, in metrics too. A ``pinned``
    group keeps a reserve of its own; the others split one reserve among them."""

    key: str
    pinned: bool = True


class Share:
    """One group's part of the budget: its reserve, slots in use from it, slots borrowed from the
    pool, and questions turned away."""

    __slots__ = ("borrowed", "name", "own", "rejected", "reserve")

    def __init__(self, name: str) -> None:
        self.name = name
        self.reserve = 1
        self.own = 0
        self.borrowed = 0
        self.rejected = 0


class ForwardBudget:
    def __init__(self, total: int, routes: Iterable[str] | Mapping[str, Group]) -> None:
        self.total = total
        self.pool = 0
        self.pool_used = 0
        self.inflight = 0
        self.shares: dict[str, Share] = {}  # by group key
        self._by_route: dict[str, Share] = {}
        self.set_routes(routes)

    def set_routes(self, routes: Iterable[str] | Mapping[str, Group]) -> None:
        """Split the budget among a new set of routes: route names, each its own pinned group, or a
        mapping of route name to group. A group that stays keeps its share and counts; slots of a
        dropped group come back when its questions end."""
        groups = dict(routes) if isinstance(routes, Mapping) else {name: Group(name) for name in routes}
        distinct = list(dict.fromkeys(groups.values()))
        shares = {group.key: self.shares.get(group.key) or Share(group.key) for group in distinct}
        pinned = [group for group in distinct if group.pinned]
        stubs = [group for group in distinct if not group.pinned]
        each = max(1, self.total // 2 // max(1, len(pinned) + bool(stubs)))
        for group in distinct:
            shares[group.key].reserve = each if group.pinned else each // len(stubs)
        self.shares = shares
        self._by_route = {route: shares[group.key] for route, group in groups.items()}
        self.pool = max(0, self.total - sum(share.reserve for share in shares.values()))

    def take(self, route: str) -> Share | None:
        """A slot for a question on ``route`` (hand it back with ``give_back``), or None: out of share."""
        share = self._by_route[route]
        if share.own < share.reserve:
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
        # Borrowed slots go back first: the pool is what the other groups can use.
        if share.borrowed:
            share.borrowed -= 1
            self.pool_used -= 1
        else:
            share.own -= 1
        self.inflight -= 1
