"""``--dns-forward-max`` shared among routes: a reserve each (the ConfigMap's stub domains one among
them, by server set), a pool for whoever comes first."""

from __future__ import annotations

from kubedns_py.cache.forward.budget import ForwardBudget, Group, Share
from kubedns_py.cache.forward.routing import build_routes
from kubedns_py.cache.servers import DnsConfig, StaticServers, Upstream

KUBE_DNS_ROUTES = ["cluster.local", "in-addr.arpa", "ip6.arpa", "."]


def fill(budget: ForwardBudget, route: str) -> list[Share]:
    taken = []
    while (share := budget.take(route)) is not None:
        taken.append(share)
    return taken


def test_one_route_takes_its_reserve_and_the_pool_and_leaves_the_others_theirs() -> None:
    budget = ForwardBudget(150, KUBE_DNS_ROUTES)
    assert ([s.reserve for s in budget.shares.values()], budget.pool) == ([18] * 4, 78)
    assert len(fill(budget, ".")) == 96
    assert budget.shares["."].rejected == 1
    for route in ("cluster.local", "in-addr.arpa", "ip6.arpa"):
        assert len(fill(budget, route)) == 18
        assert budget.shares[route].rejected == 1
    assert budget.inflight == 150


def test_two_busy_routes_split_the_pool_and_the_third_keeps_its_reserve() -> None:
    budget = ForwardBudget(12, ["cluster.local", "a.example", "b.example"])
    assert ([s.reserve for s in budget.shares.values()], budget.pool) == ([2] * 3, 6)
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
    assert ([s.reserve for s in crowded.shares.values()], crowded.pool) == ([1] * 3, 0)
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


KUBE_DNS_FLAGS = StaticServers.parse(
    [f"/{zone}/127.0.0.1#10053" for zone in ("cluster.local", "in-addr.arpa", "ip6.arpa")]
)
RESOLV = (Upstream("10.0.0.2"),)


def stub_domains(count: int, servers: int) -> DnsConfig:
    """``count`` stub domains over ``servers`` distinct servers, in turn."""
    return DnsConfig(
        stub_domains={
            f"stub{i}.example": (Upstream(f"10.1.{i % servers // 250}.{i % servers % 250}"),)
            for i in range(count)
        }
    )


def kube_dns_budget(configmap: DnsConfig | None) -> ForwardBudget:
    return ForwardBudget(150, build_routes(KUBE_DNS_FLAGS, RESOLV, configmap).names())


def test_stub_domains_on_the_same_servers_share_one_part() -> None:
    budget = kube_dns_budget(stub_domains(201, servers=3))
    assert len(budget.shares) == 4 + 3
    assert budget.take("stub0.example") is budget.take("stub3.example") is budget.shares["10.1.0.0#53"]
    assert budget.shares["10.1.0.0#53"].own == 2


def test_201_stub_domains_leave_the_cluster_routes_their_reserve_and_the_pool() -> None:
    for servers in (1, 3, 201):  # whether they share servers or each names its own
        budget = kube_dns_budget(stub_domains(201, servers))
        for route in ("cluster.local", "in-addr.arpa", "ip6.arpa", "."):
            assert budget.shares[route].reserve == 15
        assert budget.pool >= 75
        assert len(fill(budget, "cluster.local")) >= 90
        for route in ("in-addr.arpa", "ip6.arpa", "."):
            assert len(fill(budget, route)) == 15
        assert budget.inflight <= 150


def test_stub_groups_past_their_reserve_borrow_from_the_pool() -> None:
    budget = kube_dns_budget(stub_domains(201, servers=201))
    assert budget.shares["10.1.0.7#53"].reserve == 0  # 15 slots do not go round 201 servers
    assert budget.pool == 90
    assert len(fill(budget, "stub7.example")) == 90
    assert len(fill(budget, "cluster.local")) == 15  # its reserve, whatever the stub domains hold


def test_a_stub_domain_the_flags_also_name_keeps_its_own_part() -> None:
    configmap = DnsConfig(
        stub_domains={"cluster.local": (Upstream("10.1.0.1"),), "a.example": (Upstream("10.1.0.1"),)}
    )
    names = build_routes(KUBE_DNS_FLAGS, RESOLV, configmap).names()
    assert names["cluster.local"] == Group("cluster.local")
    assert names["a.example"] == Group("10.1.0.1#53", pinned=False)
    assert names["."] == Group(".")


def test_routes_given_by_name_are_each_their_own_pinned_group() -> None:
    assert ForwardBudget(150, KUBE_DNS_ROUTES).shares.keys() == set(KUBE_DNS_ROUTES)
