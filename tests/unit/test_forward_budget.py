"""``--dns-forward-max`` shared among routes: a reserve each, a pool for whoever comes first."""

from __future__ import annotations

from kubedns_py.cache.forward.budget import ForwardBudget, Share

KUBE_DNS_ROUTES = ["cluster.local", "in-addr.arpa", "ip6.arpa", "."]


def fill(budget: ForwardBudget, route: str) -> list[Share]:
    taken = []
    while (share := budget.take(route)) is not None:
        taken.append(share)
    return taken


def test_one_route_takes_its_reserve_and_the_pool_and_leaves_the_others_theirs() -> None:
    budget = ForwardBudget(150, KUBE_DNS_ROUTES)
    assert (budget.reserve, budget.pool) == (18, 78)
    assert len(fill(budget, ".")) == 96
    assert budget.shares["."].rejected == 1
    for route in ("cluster.local", "in-addr.arpa", "ip6.arpa"):
        assert len(fill(budget, route)) == 18
        assert budget.shares[route].rejected == 1
    assert budget.inflight == 150


def test_two_busy_routes_split_the_pool_and_the_third_keeps_its_reserve() -> None:
    budget = ForwardBudget(12, ["cluster.local", "a.example", "b.example"])
    assert (budget.reserve, budget.pool) == (2, 6)
    held = [budget.take("a.example") for _ in range(5)] + [budget.take("b.example") for _ in range(5)]
    assert None not in held and budget.pool_used == 6
    assert budget.take("b.example") is None
    assert len(fill(budget, "cluster.local")) == 2


def test_slots_come_back_borrowed_first() -> None:
    budget = ForwardBudget(4, ["a", "b"])
    taken = fill(budget, "a")
    assert len(taken) == 3 and budget.pool_used == 2
    budget.give_back(taken.pop())
    assert (budget.shares["a"].own, budget.shares["a"].borrowed, budget.pool_used) == (1, 1, 1)
    assert budget.take("b") is not None and budget.take("b") is not None  # its reserve, then the pool
    for share in [*taken, *(budget.shares["b"],) * 2]:
        budget.give_back(share)
    assert (budget.inflight, budget.pool_used) == (0, 0)


def test_a_lone_route_has_the_whole_budget_and_every_route_at_least_one_slot() -> None:
    assert len(fill(ForwardBudget(2, ["."]), ".")) == 2
    crowded = ForwardBudget(2, ["a", "b", "c"])
    assert (crowded.reserve, crowded.pool) == (1, 0)
    assert [len(fill(crowded, r)) for r in "abc"] == [1, 1, 1]


def test_new_routes_keep_the_counts_of_routes_that_stay() -> None:
    budget = ForwardBudget(8, ["a", "b"])
    held = fill(budget, "a")
    budget.set_routes(["a", "c"])
    assert budget.shares["a"].rejected == 1 and "b" not in budget.shares
    assert budget.take("a") is None  # still holding more than its new share
    assert len(fill(budget, "c")) == 2  # its reserve; the pool is still lent to "a"
    for share in held:
        budget.give_back(share)
    assert budget.pool_used == 0 and budget.shares["a"].own == 0
