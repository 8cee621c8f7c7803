"""The kube-dns ConfigMap as a directory (one file per key), polled for changes.

Keys: ``stubDomains`` (JSON object: DNS-1123 domain → list of ``ip`` / ``ip:port``) and
``upstreamNameservers`` (JSON list of at most 3 ``ip`` / ``ip:port``). ``federations`` is ignored. A missing
directory or key, an empty file and JSON ``null`` all mean "not set": the manifest mounts the ConfigMap
``optional: true``. Unlike kube-dns, stub nameservers must be IP addresses (no host names).

The supported way to change the files is the kubelet's: each key is a link through ``..data``, and a
new version is written beside it and swapped in by renaming the ``..data`` link, so every read sees
whole files (``mv`` of a finished file works too). A file written in place can be read half-written,
so content is only taken once it parses: an unparseable file keeps the last good configuration (logged
once per distinct content, retried at the next poll), and a key that held content and is read empty
keeps that content (logged once; delete the key, or write ``{}`` or ``null``, to clear it). A deleted
key counts at once, as the kubelet's swap removes a key so.

As in kube-dns, the content version is a sha256 over each non-dot file's name, NUL, data, NUL, so an
unchanged directory costs one hash and no parse. Polls run off the event loop, and a parse checks only
the domains and nameserver texts that the last good one had not already checked, so a reload of a
large ``stubDomains`` costs its JSON parse and a lookup per entry. Each change is logged as one line
counting what changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubedns_py.cache.servers import ConfigChange, DnsConfig, Upstream, parse_upstream, quote

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


class Checked:
    """What a parse found valid: domains, and nameservers by their text. Handed the last good parse's,
    a parse checks only what is new and keeps what it used (so this holds no more than one
    configuration's worth)."""

    __slots__ = ("domains", "nameservers")

    def __init__(self) -> None:
        self.domains: set[str] = set()
        self.nameservers: dict[str, Upstream] = {}


def _nameservers(
    key: str, domain: str | None, value: Any, known: Checked, seen: Checked
) -> tuple[Upstream, ...]:
    def where() -> str:
        return "" if domain is None else f"{quote(domain)}: "

    if not isinstance(value, list):
        raise ConfigError(key, f"{where()}expected a list of nameservers, got {_kind(value)}")
    servers: list[Upstream] = []
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(key, f"{where()}expected a nameserver string, got {_kind(item)}")
        upstream = known.nameservers.get(item)
        if upstream is None:
            try:
                upstream = parse_upstream(item, sep=":")
            except ValueError as err:
                raise ConfigError(key, f"{where()}{err}") from None
        seen.nameservers[item] = upstream
        servers.append(upstream)
    return tuple(servers)


def _stub_domains(value: Any, known: Checked, seen: Checked) -> Mapping[str, tuple[Upstream, ...]]:
    if not isinstance(value, dict):
        raise ConfigError(STUB_DOMAINS, f"expected an object of domain: [nameservers], got {_kind(value)}")
    stubs: dict[str, tuple[Upstream, ...]] = {}
    for domain, servers in value.items():
        if domain not in known.domains and (
            len(domain) > 253
            or not _DNS1123_SUBDOMAIN.fullmatch(domain)
            or any(len(label) > 63 for label in domain.split("."))
        ):
            raise ConfigError(
                STUB_DOMAINS,
                f"{quote(domain)} is not a valid domain (DNS-1123: lower-case letters, digits, '-', '.')",
            )
        seen.domains.add(domain)
        stubs[domain] = _nameservers(STUB_DOMAINS, domain, servers, known, seen)
    return types.MappingProxyType(stubs)


def parse_config(files: Mapping[str, bytes], known: Checked | None = None) -> tuple[DnsConfig, Checked]:
    """The config from the directory's files (name → data), and what it checked; ``known`` is what a
    previous parse checked, not checked again. Raises ConfigError naming the key."""
    known = known or Checked()
    seen = Checked()
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
                stubs = _stub_domains(value, known, seen)
        elif key == UPSTREAM_NAMESERVERS:
            value = _load_json(key, text)
            if value is not None:
                upstreams = _nameservers(key, None, value, known, seen)
                if len(upstreams) > MAX_UPSTREAMS:
                    raise ConfigError(
                        key, f"{len(upstreams)} nameservers; at most {MAX_UPSTREAMS} are allowed"
                    )
        elif key == FEDERATIONS:
            log.info("config-dir key %s ignored: federation is not supported", key)
        else:
            log.warning("config-dir key %s is unknown; ignored", key)
    return DnsConfig(stub_domains=stubs, upstream_nameservers=upstreams), seen


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
        self._good: dict[str, bytes] = {}  # the files of ``config``
        self._checked = Checked()

    def poll(self) -> DnsConfig | None:
        """The new config if the content changed and is valid (the first poll returns the initial
        config); None when unchanged, invalid or still being written. Blocking: ``run`` reads and
        parses in a thread."""
        return self._announce(self._read())

    def _read(self) -> tuple[DnsConfig, str] | None:
        """The new config and the line saying how it changed, taken as the last good one."""
        try:
            files = read_dir(self.path)
        except OSError as err:
            self._reject(f"error:{err}", f"config-dir {self.path}: {err}")
            return None
        version = version_of(files)
        if version == self._version:
            return None
        # Emptied in place, or caught between a truncation and the write: its last content stays.
        kept = sorted(
            key for key, data in files.items() if not data.strip() and self._good.get(key, b"").strip()
        )
        if kept:
            log.warning(
                "config-dir %s: %s read empty; keeping %s previous content (delete the key, or write {} "
                "or null, to clear it)",
                self.path,
                ", ".join(kept),
                "its" if len(kept) == 1 else "their",
            )
            files.update((key, self._good[key]) for key in kept)
        try:
            config, checked = parse_config(files, self._checked)
        except ConfigError as err:
            self._reject(version, f"config-dir {self.path / err.key}: {err.problem}")
            return None
        self._version = version
        self._good, self._checked = files, checked
        if not self._loaded:
            line = f"loaded: {describe(config)}"
        elif config == self.config:
            return None
        else:
            self.reloads += 1
            line = f"configuration changed: {summary(ConfigChange.between(self.config, config), config)}"
        self._loaded = True
        self.config = config
        return config, line

    def _announce(self, read: tuple[DnsConfig, str] | None) -> DnsConfig | None:
        if read is None:
            return None
        config, line = read
        log.info("config-dir %s: %s", self.path, line)
        return config

    def _reject(self, version: str, message: str) -> None:
        if version != self._version:  # once per distinct bad content, not every poll
            self._version = version
            self.reload_failures += 1
            keeping = "keeping the previous configuration" if self._loaded else "using the defaults"
            log.error("%s; %s", message, keeping)

    async def run(self, on_change: Callable[[DnsConfig], None]) -> None:
        """Poll now and then every ``period`` until cancelled, calling ``on_change`` with each new config.
        Reading and parsing happen in a thread, so a large ConfigMap does not hold up queries."""
        while True:
            try:  # nothing in the directory may stop the watching
                # Logged here, in the same turn as the change is applied: the line means it is in force.
                config = self._announce(await asyncio.to_thread(self._read))
                if config is not None:
                    on_change(config)
            except Exception:
                log.exception("config-dir %s: reading or applying the configuration failed", self.path)
            await asyncio.sleep(self.period)


NAMED = 3  # domains named in a log line per kind of change; the rest are counted


def _some(domains: Sequence[str]) -> str:
    if not domains:
        return ""
    more = f", +{len(domains) - NAMED} more" if len(domains) > NAMED else ""
    return f" ({', '.join(domains[:NAMED])}{more})"


def _upstreams(config: DnsConfig) -> str:
    return " ".join(map(str, config.upstream_nameservers)) or "none"


def describe(config: DnsConfig) -> str:
    """A configuration in one line of bounded length: stub domains counted, upstreams listed (at most
    three)."""
    stubs = list(config.stub_domains)
    return f"{len(stubs)} stub domains{_some(stubs)}; upstreamNameservers: {_upstreams(config)}"


def summary(change: ConfigChange, config: DnsConfig) -> str:
    """A change in one line of bounded length, e.g. ``stub domains: 3 added (a, b, c), 1 changed (d),
    0 removed; upstreamNameservers unchanged``."""
    stubs = ", ".join(
        f"{len(domains)} {kind}{_some(domains)}"
        for kind, domains in (
            ("added", change.added),
            ("changed", change.changed),
            ("removed", change.removed),
        )
    )
    upstreams = f"now {_upstreams(config)}" if change.upstreams else "unchanged"
    return f"stub domains: {stubs}; upstreamNameservers {upstreams}"
