"""Reading kubectl-shaped files and reloading them."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from kubedns_py.cluster.objects import Kind, Namespace, Service
from kubedns_py.cluster.store import Replace, Store, Synced
from kubedns_py.sources.manifests import ManifestError, ManifestSource, load_file

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 10.0.0.1}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    # Reloads key on (inode, size, mtime); bump mtime so a same-size rewrite within one tick still counts.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    return path


def test_multi_document_yaml_with_unknown_kinds(tmp_path: Path) -> None:
    text = (
        SERVICE
        + "---\nkind: ConfigMap\nmetadata: {name: x}\n---\n---\nkind: Namespace\nmetadata: {name: shop}\n"
    )
    objects = load_file(write(tmp_path / "a.yaml", text))
    assert [type(o) for o in objects] == [Service, Namespace]


def test_kubectl_list_and_typed_lists_without_item_kinds(tmp_path: Path) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "kind": "ServiceList",
                "items": [{"metadata": {"name": "a"}, "spec": {"clusterIP": "10.0.0.1"}}],
            },
            {"kind": "Namespace", "metadata": {"name": "n"}},
        ],
    }
    objects = load_file(write(tmp_path / "a.json", json.dumps(doc)))
    assert [type(o) for o in objects] == [Service, Namespace]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Service\nmetadata: {name: [\n", "cannot parse"),
        ("- just\n- a list\n", "document 1: expected an object, found list"),
        (SERVICE + "---\nkind: Service\nmetadata: {}\n", "document 2: object has no metadata.name"),
        ("kind: List\nitems: 5\n", "items is not a list"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load_file(write(tmp_path / "bad.yaml", text))


def test_reload_keeps_last_good_data_of_a_broken_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "cluster.yaml", SERVICE)
    source = ManifestSource([tmp_path])
    store = Store(required=source.kinds)
    events = source.poll()
    assert Synced(Kind.SERVICE) in events
    store.apply(events)
    assert store.synced and store.service("shop", "web") is not None

    assert source.poll() == []  # unchanged files cost nothing
    write(path, "kind: Service\nmetadata: {name: [\n")
    with caplog.at_level(logging.ERROR):
        assert source.poll() == []
        assert source.poll() == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0] and "cannot parse" in errors[0]
    assert store.service("shop", "web") is not None

    write(path, SERVICE.replace("10.0.0.1", "10.0.0.2"))
    store.apply(source.poll())
    assert store.service("shop", "web").addresses == ("10.0.0.2",)  # type: ignore[union-attr]


def test_removed_file_removes_its_objects_and_dotfiles_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "svc.yml", SERVICE)
    write(tmp_path / ".hidden.yaml", SERVICE.replace("web", "ghost"))
    source = ManifestSource([tmp_path])
    store = Store(required=source.kinds)
    store.apply(source.poll())
    assert store.service("shop", "ghost") is None
    path.unlink()
    events = source.poll()
    assert Replace(Kind.SERVICE, ()) in events
    store.apply(events)
    assert store.service("shop", "web") is None


def test_no_sync_until_every_file_loaded_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "later.yaml"
    source = ManifestSource([missing])
    with caplog.at_level(logging.ERROR):
        assert source.poll() == []
        assert source.poll() == []
    assert sum("no such file" in r.getMessage() for r in caplog.records) == 1
    write(missing, SERVICE)
    assert Synced(Kind.SERVICE) in source.poll()


def test_pathological_files_are_bad_files_not_a_dead_source(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot parse"):
        load_file(write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000))
    nul = '{"kind": "Service", "metadata": {"name": "x"}, "spec": {"clusterIP": "10.96.9.9\\u0000"}}'
    assert [type(o) for o in load_file(write(tmp_path / "nul.json", nul))] == [Service]


def test_a_directory_that_appears_later_is_read(tmp_path: Path) -> None:
    later = tmp_path / "later"
    source = ManifestSource([later])
    assert source.poll() == []
    later.mkdir()
    write(later / "cluster.yaml", SERVICE)
    assert Synced(Kind.SERVICE) in source.poll()
