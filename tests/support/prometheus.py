"""A real Prometheus server (Debian's ``prometheus`` package) scraping test processes on loopback, and
its ``promtool``:

    with running_prometheus(tmp_path, {"kube-dns-serve": [port]}, rules=[RULES]) as prom:
        prom.wait_for_scrapes(3)
        prom.query("up")

Its storage lives in the given directory; it listens on a free 127.0.0.1 port and scrapes and evaluates
rules every second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ports import HOST, free_port
from tests.support.waiting import wait_until

INTERVAL = "1s"
START_WITHIN = 20.0


class Prometheus:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://{HOST}:{self.port}/api/v1/{path}{query}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            body = json.load(reply)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector: ``[{"metric": {...}, "value": [time, "1.5"]}, ...]``."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/-/ready", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return self.process.poll() is not None  # exited: let the caller's check say so

    def scrapes(self) -> float:
        """Scrapes so far of the target scraped least (0 until every target answered once)."""
        result = self.query("min(count_over_time(up[1h]))")
        return float(result[0]["value"][1]) if result else 0.0

    def wait_for_scrapes(self, count: float, timeout: float = 20.0) -> None:
        wait_until(lambda: self.scrapes() >= count, timeout)

    def wait_for(self, expr: str, timeout: float = 20.0) -> None:
        """Until ``expr`` returns a non-empty vector."""
        wait_until(lambda: bool(self.query(expr)), timeout)

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups


def promtool(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``promtool args`` run to its end (skipped where it is not installed)."""
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, text=True, timeout=30, check=False, cwd=cwd
    )


def config(jobs: Mapping[str, Sequence[int]], labels: Mapping[str, str], rules: Sequence[Path]) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
            "rule_files": [str(path) for path in rules],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [
                        {"targets": [f"{HOST}:{port}" for port in ports], "labels": dict(labels)}
                    ],
                }
                for job, ports in jobs.items()
            ],
        }
    )


@contextmanager
def running_prometheus(
    directory: Path,
    jobs: Mapping[str, Sequence[int]],
    *,
    labels: Mapping[str, str] | None = None,
    rules: Sequence[Path] = (),
) -> Iterator[Prometheus]:
    """Prometheus scraping ``jobs`` (job name -> metrics ports on 127.0.0.1), each target with
    ``labels``, evaluating the ``rules`` files; stopped (SIGTERM) on exit."""
    path = directory / "prometheus.yaml"
    path.write_text(config(jobs, labels or {}, rules))
    port = free_port()
    log = (directory / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={path}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    prometheus = Prometheus(process, port)
    try:
        wait_until(prometheus.ready, START_WITHIN)
        assert process.poll() is None, (directory / "prometheus.log").read_text()
        yield prometheus
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
