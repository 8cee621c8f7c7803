"""The kube-dns ConfigMap, mounted as a directory (one file per key), polled for changes.

Keys: ``stubDomains`` (JSON object: DNS-1123 domain → list of ``ip`` / ``ip:port``) and
``upstreamNameservers`` (JSON list of at most 3 ``ip`` / ``ip:port``). ``federations`` is ignored. A missing
directory or key, an empty file and JSON ``null`` all mean "not set": the manifest mounts the ConfigMap
``optional: true``. Unlike kube-dns, stub nameservers must be IP addresses (no host names).

As in kube-dns, the content version is a sha256 over each non-dot file's name, NUL, data, NUL, so an
unchanged directory costs one hash and no parse; invalid content is rejected whole, the last good
configuration stays, and the problem is logged once per distinct content.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubedns_py.cache.settings import DnsConfig, Upstream, parse_upstream, quote

log = logging.getLogger(__name__)

STUB_DOMAINS = "stubDomains"
UPSTREAM_NAMESERVERS = "upstreamNameservers"
FEDERATIONS = "federations"
MAX_UPSTREAMS = 3  # kube-dns's limit (and resolv.conf's)

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number"}


class ConfigError(ValueError):
    """Invalid content under one key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return "a number" if isinstance(value, float) else _JSON_TYPES.get(type(value), type(value).__name__)


def _load_json(key: str, text: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(key, f"invalid JSON: {err}") from None
    except RecursionError:
        raise ConfigError(key, "invalid JSON: nested too deeply") from None


def _nameservers(key: str, where: str, value: Any) -> tuple[Upstream, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, f"{where}expected a list of nameservers, got {_kind(value)}")
    servers: list[Upstream] = []
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(key, f"{where}expected a nameserver string, got {_kind(item)}")
        try:
            servers.append(parse_upstream(item, sep=":"))
        except ValueError as err:
            raise ConfigError(key, f"{where}{err}") from None
    return tuple(servers)


def _stub_domains(value: Any) -> Mapping[str, tuple[Upstream, ...]]:
    if not isinstance(value, dict):
        raise ConfigError(STUB_DOMAINS, f"expected an object of domain: [nameservers], got {_kind(value)}")
    stubs: dict[str, tuple[Upstream, ...]] = {}
    for domain, servers in value.items():
        if (
            len(domain) > 253
            or not _DNS1123_SUBDOMAIN.fullmatch(domain)
            or any(len(label) > 63 for label in domain.split("."))
        ):
            raise ConfigError(
                STUB_DOMAINS,
                f"{quote(domain)} is not a valid domain (DNS-1123: lower-case letters, digits, '-', '.')",
            )
        stubs[domain] = _nameservers(STUB_DOMAINS, f"{quote(domain)}: ", servers)
    return types.MappingProxyType(stubs)


def parse_config(files: Mapping[str, bytes]) -> DnsConfig:
    """The config from the directory's files (name → data); raises ConfigError naming the key."""
    texts: dict[str, str] = {}
    for key, data in files.items():
        try:
            texts[key] = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(key, f"not UTF-8 text (byte {err.start})") from None
    stubs: Mapping[str, tuple[Upstream, ...]] = types.MappingProxyType({})
    upstreams: tuple[Upstream, ...] = ()
    for key, text in texts.items():
        if key == STUB_DOMAINS:
            value = _load_json(key, text)
            if value is not None:
                stubs = _stub_domains(value)
        elif key == UPSTREAM_NAMESERVERS:
            value = _load_json(key, text)
            if value is not None:
                upstreams = _nameservers(key, "", value)
                if len(upstreams) > MAX_UPSTREAMS:
                    raise ConfigError(
                        key, f"{len(upstreams)} nameservers; at most {MAX_UPSTREAMS} are allowed"
                    )
        elif key == FEDERATIONS:
            log.info("config-dir key %s ignored: federation is not supported", key)
        else:
            log.warning("config-dir key %s is unknown; ignored", key)
    return DnsConfig(stub_domains=stubs, upstream_nameservers=upstreams)


def read_dir(path: Path) -> dict[str, bytes]:
    """The non-dot regular files of ``path`` (symlinks followed, as a mounted ConfigMap's keys are), by
    name; a missing directory has none."""
    files: dict[str, bytes] = {}
    try:
        entries = sorted(os.scandir(path), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return files
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file():
            continue
        try:
            files[entry.name] = Path(entry.path).read_bytes()
        except FileNotFoundError:
            continue  # removed since the listing: the next poll sees the new content
    return files


def version_of(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(os.fsencode(name) + b"\0" + files[name] + b"\0")
    return digest.hexdigest()


class ConfigDirWatcher:
    """Polls ``path`` every ``period`` seconds. ``config`` is the last good configuration (empty until
    the first good load); ``reloads`` counts accepted changes after the first load and
    ``reload_failures`` each distinct invalid content."""

    def __init__(self, path: str | Path, period: float = 10.0) -> None:
        if period <= 0:
            raise ValueError(f"config-dir poll period must be positive, not {period}")
        self.path = Path(path)
        self.period = period
        self.config = DnsConfig()
        self.reloads = 0
        self.reload_failures = 0
        self._version: str | None = None  # of the last content looked at, good or bad
        self._loaded = False

    def poll(self) -> DnsConfig | None:
        """The new config if the content changed and is valid (the first poll returns the initial
        config); None when unchanged or invalid. Blocking, but a few small files."""
        try:
            files = read_dir(self.path)
        except OSError as err:
            self._reject(f"error:{err}", f"config-dir {self.path}: {err}")
            return None
        version = version_of(files)
        if version == self._version:
            return None
        try:
            config = parse_config(files)
        except ConfigError as err:
            self._reject(version, f"config-dir {self.path / err.key}: {err.problem}")
            return None
        self._version = version
        if self._loaded:
            self.reloads += 1
            log.info("config-dir %s: configuration changed (%s)", self.path, describe(config))
        else:
            log.info("config-dir %s: loaded (%s)", self.path, describe(config))
        self._loaded = True
        self.config = config
        return config

    def _reject(self, version: str, message: str) -> None:
        if version != self._version:  # once per distinct bad content, not every poll
            self._version = version
            self.reload_failures += 1
            keeping = "keeping the previous configuration" if self._loaded else "using the defaults"
            log.error("%s; %s", message, keeping)

    async def run(self, on_change: Callable[[DnsConfig], None]) -> None:
        """Poll now and then every ``period`` until cancelled, calling ``on_change`` with each new config."""
        while True:
            try:  # nothing in the directory may stop the watching
                config = self.poll()
                if config is not None:
                    on_change(config)
            except Exception:
                log.exception("config-dir %s: reading or applying the configuration failed", self.path)
            await asyncio.sleep(self.period)


def describe(config: DnsConfig) -> str:
    stubs = ", ".join(
        f"{domain} → {' '.join(map(str, servers))}" for domain, servers in config.stub_domains.items()
    )
    upstreams = " ".join(map(str, config.upstream_nameservers))
    return f"stubDomains: {stubs or 'none'}; upstreamNameservers: {upstreams or 'none'}"
