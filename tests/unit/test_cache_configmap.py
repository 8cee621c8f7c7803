"""The kube-dns ConfigMap directory: valid keys load, invalid content keeps the last good config with one
log line, dotfiles are skipped, unchanged content is not re-parsed, a file caught half-written in place
is not taken, a change is one short log line, and polls run off the event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path

import pytest

from kubedns_py.cache import configmap
from kubedns_py.cache.configmap import ConfigDirWatcher
from kubedns_py.cache.servers import ConfigChange, DnsConfig, Upstream

STUBS = '{"acme.local": ["1.2.3.4", "1.2.3.5:5353"], "corp.example": ["[fd00::53]:53", "fd00::54"]}'
UPSTREAMS = '["8.8.8.8", "8.8.4.4:53"]'


def write(directory: Path, **keys: str | bytes) -> None:
    directory.mkdir(exist_ok=True)
    for key, value in keys.items():
        path = directory / key
        path.write_bytes(value if isinstance(value, bytes) else value.encode())


def mount_like_kubelet(directory: Path, **keys: str) -> None:
    """The layout of a mounted ConfigMap: the keys are links through ``..data`` to a timestamped dir."""
    data = directory / "..2024_01_01_00_00_00.000000001"
    data.mkdir(parents=True)
    for key, value in keys.items():
        (data / key).write_text(value)
        (directory / key).symlink_to(Path("..data") / key)
    (directory / "..data").symlink_to(data.name)


def test_valid_keys_load(tmp_path: Path) -> None:
    write(tmp_path, stubDomains=STUBS, upstreamNameservers=UPSTREAMS)
    config = ConfigDirWatcher(tmp_path).poll()
    assert config is not None
    assert dict(config.stub_domains) == {
        "acme.local": (Upstream("1.2.3.4"), Upstream("1.2.3.5", 5353)),
        "corp.example": (Upstream("fd00::53"), Upstream("fd00::54")),
    }
    assert config.upstream_nameservers == (Upstream("8.8.8.8"), Upstream("8.8.4.4"))


def test_a_mounted_configmap_loads_and_dotfiles_are_skipped(tmp_path: Path) -> None:
    mount_like_kubelet(tmp_path, stubDomains=STUBS)
    (tmp_path / ".hidden").write_text("not json")
    config = ConfigDirWatcher(tmp_path).poll()
    assert config is not None
    assert set(config.stub_domains) == {"acme.local", "corp.example"}


@pytest.mark.parametrize("keys", [{}, {"stubDomains": ""}, {"upstreamNameservers": " null\n"}])
def test_missing_or_empty_keys_are_an_empty_config(tmp_path: Path, keys: dict[str, str]) -> None:
    write(tmp_path, **keys)
    assert ConfigDirWatcher(tmp_path).poll() == DnsConfig()


def test_a_missing_directory_is_an_empty_config(tmp_path: Path) -> None:
    watcher = ConfigDirWatcher(tmp_path / "absent")
    assert watcher.poll() == DnsConfig()
    assert watcher.poll() is None


def test_federations_is_ignored_with_a_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, federations="myfed=example.com")
    with caplog.at_level(logging.INFO):
        assert ConfigDirWatcher(tmp_path).poll() == DnsConfig()
    assert "federations ignored" in caplog.text


INVALID = [
    ({"stubDomains": "{not json"}, "stubDomains: invalid JSON"),
    ({"stubDomains": '["1.2.3.4"]'}, "stubDomains: expected an object of domain: [nameservers], got a list"),
    (
        {"stubDomains": '{"acme.local": "1.2.3.4"}'},
        '"acme.local": expected a list of nameservers, got a string',
    ),
    ({"stubDomains": '{"acme.local": [1234]}'}, "expected a nameserver string, got a number"),
    ({"stubDomains": '{"Acme.local": ["1.2.3.4"]}'}, '"Acme.local" is not a valid domain'),
    ({"stubDomains": '{"acme.local.": ["1.2.3.4"]}'}, '"acme.local." is not a valid domain'),
    ({"stubDomains": '{"acme.local": ["1.2.3.x"]}'}, '"acme.local": "1.2.3.x" is not an IP address'),
    ({"stubDomains": '{"acme.local": ["ns.acme.local"]}'}, "host names are not accepted"),
    ({"stubDomains": '{"acme.local": ["1.2.3.4:99999"]}'}, 'port "99999"'),
    (
        {"upstreamNameservers": '"8.8.8.8"'},
        "upstreamNameservers: expected a list of nameservers, got a string",
    ),
    ({"upstreamNameservers": '["8.8.8.8", true]'}, "expected a nameserver string, got a boolean"),
    ({"upstreamNameservers": '["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]'}, "4 nameservers; at most 3"),
    ({"upstreamNameservers": b'["8.8.8.8"\xff]'}, "upstreamNameservers: not UTF-8 text"),
    ({"notes": b"\xc3\x28"}, "notes: not UTF-8 text"),
]


@pytest.mark.parametrize(("keys", "problem"), INVALID)
def test_invalid_content_keeps_the_last_good_config_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, keys: dict[str, str | bytes], problem: str
) -> None:
    write(tmp_path, stubDomains=STUBS)
    watcher = ConfigDirWatcher(tmp_path)
    good = watcher.poll()
    assert good is not None
    write(tmp_path, **keys)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert watcher.poll() is None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"config-dir {tmp_path / next(iter(keys))}: ")
    assert problem in errors[0]
    assert errors[0].endswith("; keeping the previous configuration")
    assert watcher.config is good
    assert (watcher.reloads, watcher.reload_failures) == (0, 1)


def test_an_invalid_first_load_uses_the_defaults(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, upstreamNameservers="[")
    watcher = ConfigDirWatcher(tmp_path)
    assert watcher.poll() is None
    assert watcher.config == DnsConfig()
    assert "using the defaults" in caplog.text
    write(tmp_path, upstreamNameservers=UPSTREAMS)
    fixed = watcher.poll()
    assert fixed is not None and fixed.upstream_nameservers == (Upstream("8.8.8.8"), Upstream("8.8.4.4"))


def test_unchanged_content_is_not_reparsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, stubDomains=STUBS)
    parses: list[int] = []
    real_parse = configmap.parse_config

    def counting_parse(
        files: dict[str, bytes], known: configmap.Checked
    ) -> tuple[DnsConfig, configmap.Checked]:
        parses.append(len(files))
        return real_parse(files, known)

    monkeypatch.setattr(configmap, "parse_config", counting_parse)
    watcher = ConfigDirWatcher(tmp_path)
    assert watcher.poll() is not None
    os.utime(tmp_path / "stubDomains")  # a touch is not a change
    assert watcher.poll() is None
    assert watcher.poll() is None
    assert parses == [1]


def test_a_change_is_detected(tmp_path: Path) -> None:
    write(tmp_path, stubDomains=STUBS)
    watcher = ConfigDirWatcher(tmp_path)
    assert watcher.poll() is not None
    write(tmp_path, upstreamNameservers='["9.9.9.9"]')
    changed = watcher.poll()
    assert changed is not None and changed.upstream_nameservers == (Upstream("9.9.9.9"),)
    assert set(changed.stub_domains) == {"acme.local", "corp.example"}
    (tmp_path / "stubDomains").unlink()
    (tmp_path / "upstreamNameservers").unlink()
    assert watcher.poll() == DnsConfig()  # the ConfigMap emptied: back to the defaults
    assert (watcher.reloads, watcher.reload_failures) == (2, 0)


def test_a_kubelet_style_swap_is_detected(tmp_path: Path) -> None:
    mount_like_kubelet(tmp_path, upstreamNameservers='["8.8.8.8"]')
    watcher = ConfigDirWatcher(tmp_path)
    assert watcher.poll() is not None
    fresh = tmp_path / "..2024_01_01_00_01_00.000000001"
    fresh.mkdir()
    (fresh / "upstreamNameservers").write_text('["1.1.1.1"]')
    (tmp_path / "..data_tmp").symlink_to(fresh.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    changed = watcher.poll()
    assert changed is not None and changed.upstream_nameservers == (Upstream("1.1.1.1"),)


async def test_run_calls_back_on_each_change(tmp_path: Path) -> None:
    write(tmp_path, upstreamNameservers='["8.8.8.8"]')
    watcher = ConfigDirWatcher(tmp_path, period=0.01)
    seen: list[DnsConfig] = []
    changed = asyncio.Event()

    def on_change(config: DnsConfig) -> None:
        seen.append(config)
        changed.set()

    task = asyncio.create_task(watcher.run(on_change))
    try:
        await asyncio.wait_for(changed.wait(), 5)
        changed.clear()
        write(tmp_path, upstreamNameservers='["9.9.9.9"]')
        await asyncio.wait_for(changed.wait(), 5)
    finally:
        task.cancel()
    assert [c.upstream_nameservers for c in seen] == [(Upstream("8.8.8.8"),), (Upstream("9.9.9.9"),)]


def test_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ConfigDirWatcher("/nonexistent", period=0)


def test_json_nested_too_deeply_is_one_bad_key_not_a_dead_watcher(tmp_path: Path) -> None:
    (tmp_path / "upstreamNameservers").write_text("[" * 100_000 + "]" * 100_000)
    watcher = ConfigDirWatcher(tmp_path, 1.0)
    assert watcher.poll() is None
    assert watcher.reload_failures == 1
    (tmp_path / "upstreamNameservers").write_text('["10.0.0.53"]')
    config = watcher.poll()
    assert config is not None and [str(u) for u in config.upstream_nameservers] == ["10.0.0.53#53"]


def stubs(count: int, changed: dict[str, str] | None = None) -> str:
    """``count`` stub domains ``stubN.example`` on 10.1.0.N % 3, then ``changed`` (domain: server)."""
    domains = {f"stub{i}.example": [f"10.1.0.{i % 3}"] for i in range(count)}
    return json.dumps(domains | {domain: [server] for domain, server in (changed or {}).items()})


def infos(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == configmap.log.name and r.levelno == logging.INFO
    ]


def test_a_file_emptied_in_place_keeps_its_content_until_written_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, stubDomains=STUBS, upstreamNameservers=UPSTREAMS)
    watcher = ConfigDirWatcher(tmp_path)
    good = watcher.poll()
    assert good is not None
    write(tmp_path, stubDomains="")  # an editor's in-place write, caught after truncating
    caplog.clear()
    for _ in range(3):
        assert watcher.poll() is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"config-dir {tmp_path}: stubDomains read empty; keeping its previous content (delete the key, "
        "or write {} or null, to clear it)"
    ]
    write(tmp_path, stubDomains=STUBS[: len(STUBS) // 2])  # half-written
    assert watcher.poll() is None
    assert watcher.config is good and watcher.reload_failures == 1
    write(tmp_path, stubDomains='{"acme.local": ["1.2.3.9"]}')
    changed = watcher.poll()
    assert changed is not None and dict(changed.stub_domains) == {"acme.local": (Upstream("1.2.3.9"),)}
    assert watcher.reloads == 1


def test_an_emptied_key_keeps_its_content_while_other_keys_change(tmp_path: Path) -> None:
    write(tmp_path, stubDomains=STUBS, upstreamNameservers=UPSTREAMS)
    watcher = ConfigDirWatcher(tmp_path)
    assert watcher.poll() is not None
    write(tmp_path, stubDomains=" \n", upstreamNameservers='["9.9.9.9"]')
    changed = watcher.poll()
    assert changed is not None and changed.upstream_nameservers == (Upstream("9.9.9.9"),)
    assert set(changed.stub_domains) == {"acme.local", "corp.example"}


@pytest.mark.parametrize("cleared", ["{}", "null"])
def test_a_key_is_cleared_by_deleting_it_or_by_writing_empty_json(tmp_path: Path, cleared: str) -> None:
    write(tmp_path, stubDomains=STUBS, upstreamNameservers=UPSTREAMS)
    watcher = ConfigDirWatcher(tmp_path)
    assert watcher.poll() is not None
    write(tmp_path, stubDomains=cleared)
    changed = watcher.poll()
    assert changed is not None and dict(changed.stub_domains) == {}
    (tmp_path / "upstreamNameservers").unlink()
    changed = watcher.poll()
    assert changed == DnsConfig()


def test_a_kubelet_swap_that_removes_a_key_counts(tmp_path: Path) -> None:
    mount_like_kubelet(tmp_path, stubDomains=STUBS, upstreamNameservers=UPSTREAMS)
    watcher = ConfigDirWatcher(tmp_path)
    assert watcher.poll() is not None
    fresh = tmp_path / "..2024_01_01_00_01_00.000000001"
    fresh.mkdir()
    (fresh / "upstreamNameservers").write_text(UPSTREAMS)
    (tmp_path / "..data_tmp").symlink_to(fresh.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    (tmp_path / "stubDomains").unlink()  # the kubelet drops the key's link after the swap
    changed = watcher.poll()
    assert changed is not None and dict(changed.stub_domains) == {}


def test_each_change_is_one_short_line_counting_what_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, stubDomains=stubs(1000), upstreamNameservers=UPSTREAMS)
    watcher = ConfigDirWatcher(tmp_path)
    with caplog.at_level(logging.INFO):
        assert watcher.poll() is not None
        assert infos(caplog) == [
            f"config-dir {tmp_path}: loaded: 1000 stub domains (stub0.example, stub1.example, "
            "stub2.example, +997 more); upstreamNameservers: 8.8.8.8#53 8.8.4.4#53"
        ]
        caplog.clear()
        changed = json.loads(stubs(1000, {"stub5.example": "10.9.9.9"})) | {"new.example": ["10.9.9.9"]}
        del changed["stub7.example"]
        write(tmp_path, stubDomains=json.dumps(changed))
        assert watcher.poll() is not None
    assert infos(caplog) == [
        f"config-dir {tmp_path}: configuration changed: stub domains: 1 added (new.example), 1 changed "
        "(stub5.example), 1 removed (stub7.example); upstreamNameservers unchanged"
    ]


def test_content_that_reads_the_same_is_not_a_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, stubDomains=STUBS)
    watcher = ConfigDirWatcher(tmp_path)
    assert watcher.poll() is not None
    write(tmp_path, stubDomains=json.dumps(json.loads(STUBS), indent=2))
    with caplog.at_level(logging.INFO):
        assert watcher.poll() is None
    assert infos(caplog) == [] and watcher.reloads == 0


def test_a_reload_checks_only_new_domains_and_nameservers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, stubDomains=stubs(1000))
    watcher = ConfigDirWatcher(tmp_path)
    assert watcher.poll() is not None
    parsed: list[str] = []
    real_parse = configmap.parse_upstream

    def counting_parse(text: str, sep: str = "#") -> Upstream:
        parsed.append(text)
        return real_parse(text, sep)

    monkeypatch.setattr(configmap, "parse_upstream", counting_parse)
    write(tmp_path, stubDomains=stubs(1000, {"stub5.example": "10.9.9.9", "new.example": "10.1.0.1"}))
    changed = watcher.poll()
    assert changed is not None and changed.stub_domains["stub5.example"] == (Upstream("10.9.9.9"),)
    assert parsed == ["10.9.9.9"]


def test_what_was_checked_is_kept_only_while_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    real_parse = configmap.parse_upstream

    def counting_parse(text: str, sep: str = "#") -> Upstream:
        parsed.append(text)
        return real_parse(text, sep)

    monkeypatch.setattr(configmap, "parse_upstream", counting_parse)
    watcher = ConfigDirWatcher(tmp_path)
    for servers in ('["8.8.8.8"]', '["9.9.9.9"]', '["8.8.8.8"]'):
        write(tmp_path, upstreamNameservers=servers)
        assert watcher.poll() is not None
    assert parsed == ["8.8.8.8", "9.9.9.9", "8.8.8.8"]  # no memo of every text ever seen


async def test_polls_read_off_the_event_loop_and_log_as_the_change_is_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, upstreamNameservers='["8.8.8.8"]')
    watcher = ConfigDirWatcher(tmp_path, period=0.01)
    read_in: list[int] = []
    real_read = configmap.read_dir

    def read_dir(path: Path) -> dict[str, bytes]:
        read_in.append(threading.get_ident())
        return real_read(path)

    monkeypatch.setattr(configmap, "read_dir", read_dir)
    loaded = asyncio.Event()
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(watcher.run(lambda config: loaded.set()))
        try:
            await asyncio.wait_for(loaded.wait(), 5)
        finally:
            task.cancel()
    assert read_in and threading.get_ident() not in read_in
    # The line is logged by the loop, in the turn that applies the change, so a reader of the log
    # never asks before the change is in force.
    (line,) = [r for r in caplog.records if "loaded" in r.getMessage()]
    assert line.thread == threading.get_ident()


def test_config_change_names_the_stub_domains_routed_elsewhere() -> None:
    a, b = (Upstream("10.0.0.1"),), (Upstream("10.0.0.2"),)
    old = DnsConfig(stub_domains={"same.example": a, "moved.example": a, "gone.example": a})
    new = DnsConfig(
        stub_domains={"same.example": a, "moved.example": b, "new.example": b}, upstream_nameservers=b
    )
    change = ConfigChange.between(old, new)
    assert change == ConfigChange(
        added=("new.example",), changed=("moved.example",), removed=("gone.example",), upstreams=True
    )
    assert change.domains() == {"new.example", "moved.example", "gone.example"}
    assert ConfigChange.between(new, new) == ConfigChange()
