"""One /metrics for worker processes (``net.exposition``): series summed, except constant information
and limits (largest), whether something is up and start times (smallest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubedns_py.flags import usable_cpus
from kubedns_py.net.exposition import merge
from tests.support.metrics import parse_metrics

WORKER = """# HELP kubedns_dns_requests_total DNS queries received.
# TYPE kubedns_dns_requests_total counter
kubedns_dns_requests_total{{proto="udp",type="A"}} {requests}
# HELP kubedns_dns_request_duration_seconds How long answering took.
# TYPE kubedns_dns_request_duration_seconds histogram
kubedns_dns_request_duration_seconds_bucket{{le="0.001"}} {requests}
kubedns_dns_request_duration_seconds_bucket{{le="+Inf"}} {requests}
kubedns_dns_request_duration_seconds_count {requests}
kubedns_dns_request_duration_seconds_sum 0.5
# HELP kubedns_forward_upstream_up 1 when an upstream is in service.
# TYPE kubedns_forward_upstream_up gauge
kubedns_forward_upstream_up{{to="192.0.2.53#53"}} {up}
# HELP kubedns_build_info Build information (always 1).
# TYPE kubedns_build_info gauge
kubedns_build_info{{version="1"}} 1.0
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds {started}
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
process_max_fds 1024.0
"""


def test_counters_and_histograms_add_up_and_the_rest_merges_by_its_meaning() -> None:
    merged = parse_metrics(
        merge(
            [
                WORKER.format(requests=3, up=1, started=100),
                WORKER.format(requests=4, up=0, started=90),
                WORKER.format(requests=5, up=1, started=95),
            ]
        ).decode()
    )
    assert merged.value("kubedns_dns_requests_total", proto="udp", type="A") == 12
    assert merged.value("kubedns_dns_request_duration_seconds_bucket", le="0.001") == 12
    assert merged.value("kubedns_dns_request_duration_seconds_count") == 12
    assert merged.value("kubedns_dns_request_duration_seconds_sum") == 1.5
    assert merged.value("kubedns_forward_upstream_up", to="192.0.2.53#53") == 0  # one worker has it out
    assert merged.value("kubedns_build_info", version="1") == 1
    assert merged.value("process_start_time_seconds") == 90
    assert merged.value("process_max_fds") == 1024
    assert merged.sample_types["kubedns_dns_requests_total"] == "counter"


def test_series_only_some_workers_have_are_kept() -> None:
    other = '# HELP x_total X.\n# TYPE x_total counter\nx_total{to="b"} 2.0\n'
    merged = parse_metrics(merge([WORKER.format(requests=1, up=1, started=1), other]).decode())
    assert merged.value("x_total", to="b") == 2
    assert merged.value("kubedns_dns_requests_total") == 1


@pytest.mark.parametrize(
    ("cpu_max", "most"), [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1)]
)
def test_workers_auto_counts_the_cpus_the_cgroup_allows(
    tmp_path: Path, cpu_max: str, most: int | None
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    found = usable_cpus(str(path))
    assert 1 <= found <= (most or found)
    if most is not None:
        assert found == min(most, usable_cpus(str(tmp_path / "missing")))
