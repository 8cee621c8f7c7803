"""Cluster objects from files, as ``kubectl get ... -o yaml|json`` prints them.

Each path is a file or a directory of ``*.yaml``/``*.yml``/``*.json`` files (dotfiles skipped, so a
mounted ConfigMap's ``..data`` links do not count twice). A file is a ``List``, a typed list such as
``ServiceList``, a multi-document YAML stream, or a single object. Files are polled for changes; a file
that fails to load is reported once per change, naming the file and the problem, and its previous
objects stay in force. Kinds the server does not use are ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from kubedns_py.cluster.objects import KINDS_BY_NAME, Kind, KubeObject, ObjectError, from_dict, object_key
from kubedns_py.cluster.store import Event, Replace, Synced
from kubedns_py.sources.base import ApplyEvents

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
# libyaml's parser when PyYAML has it: several times faster on big files.
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Signature = tuple[int, int, int]  # inode, size, mtime in ns


class ManifestError(ValueError):
    pass


class ManifestSource:
    def __init__(self, paths: Sequence[Path], poll_interval: float = 0.25) -> None:
        self._paths = [Path(p) for p in paths]
        self._poll_interval = poll_interval
        self._loaded: dict[Path, tuple[Signature, list[KubeObject]]] = {}
        self._failed: dict[Path, Signature] = {}
        self._missing: set[Path] = set()
        self._synced = False

    @property
    def kinds(self) -> frozenset[Kind]:
        return frozenset(Kind)

    async def run(self, apply: ApplyEvents) -> None:
        while True:
            # Parsing a big file takes a while: off the event loop, so queries are answered meanwhile.
            events = await asyncio.to_thread(self.poll)
            if events:
                apply(events)
            await asyncio.sleep(self._poll_interval)

    def poll(self) -> list[Event]:
        """Reload what changed; the events to apply (empty when nothing did)."""
        changed = False
        seen: set[Path] = set()
        for path in self._files():
            seen.add(path)
            try:
                stat = path.stat()
            except OSError:
                continue
            signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if self._loaded.get(path, (None,))[0] == signature or self._failed.get(path) == signature:
                continue
            try:
                objects = load_file(path)
            except ManifestError as err:
                self._failed[path] = signature
                log.error("%s: %s; keeping the data it last gave", path, err)
                continue
            self._failed.pop(path, None)
            self._loaded[path] = (signature, objects)
            changed = True
        for gone in [p for p in self._loaded if p not in seen]:
            del self._loaded[gone]
            changed = True
        self._failed = {p: s for p, s in self._failed.items() if p in seen}
        if not changed and self._synced:
            return []
        if (self._failed or self._missing) and not self._synced:
            return []  # answer SERVFAIL rather than serve a partial cluster before every file loads
        by_kind: dict[Kind, list[KubeObject]] = {kind: [] for kind in Kind}
        for _, objects in self._loaded.values():
            for obj in objects:
                by_kind[object_key(obj)[0]].append(obj)
        events: list[Event] = [Replace(kind, tuple(objs)) for kind, objs in by_kind.items()]
        if not self._synced:
            self._synced = True
            events += [Synced(kind) for kind in Kind]
        return events

    def _files(self) -> Iterator[Path]:
        for path in self._paths:
            if path.exists():
                self._missing.discard(path)
            if path.is_dir():
                yield from files_in(path)
            elif path.exists():
                yield path
            elif path not in self._missing:
                self._missing.add(path)
                log.error("%s: no such file or directory", path)


def files_in(directory: Path) -> list[Path]:
    """The manifest files of a directory, in load order."""
    return sorted(
        p for p in directory.iterdir() if p.suffix in SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def load_file(path: Path) -> list[KubeObject]:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            documents = [json.loads(text)]
        else:
            documents = list(yaml.load_all(text, Loader=YamlLoader))
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as err:
        raise ManifestError(f"cannot parse: {_one_line(err)}") from err
    objects: list[KubeObject] = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        try:
            objects += _objects(document, None)
        except ObjectError as err:
            raise ManifestError(f"document {index + 1}: {err}") from err
        except Exception as err:  # whatever else odd data triggers: a bad file, never a dead source
            raise ManifestError(f"document {index + 1}: {type(err).__name__}: {_one_line(err)}") from err
    return objects


def _objects(document: Any, list_kind: str | None) -> list[KubeObject]:
    if not isinstance(document, Mapping):
        raise ObjectError(f"expected an object, found {type(document).__name__}")
    kind_name = document.get("kind") or (list_kind[: -len("List")] if list_kind else None)
    if not isinstance(kind_name, str):
        raise ObjectError("object without a kind")
    if kind_name.endswith("List"):
        items = document.get("items") or []
        if not isinstance(items, list):
            raise ObjectError(f"{kind_name}: items is not a list")
        return [obj for item in items for obj in _objects(item, kind_name)]
    kind = KINDS_BY_NAME.get(kind_name)
    return [] if kind is None else [from_dict(kind, document)]


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
