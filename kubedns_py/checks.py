"""What ``--check-config`` reads beyond the flags: every file the command would read, parsed as the
command would parse it, so that a zero exit means the command would start with it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from kubedns_py.cache.configmap import ConfigError, parse_config, read_dir
from kubedns_py.sources.kube.client import KubeSettings, client_configuration
from kubedns_py.sources.manifests import ManifestError, files_in, load_file


def manifest_problems(paths: Sequence[Path]) -> list[str]:
    problems: list[str] = []
    for path in paths:
        if not path.exists():
            problems.append(f"--manifests {path}: no such file or directory")
            continue
        try:
            files = files_in(path) if path.is_dir() else [path]
        except OSError as err:
            problems.append(f"--manifests {path}: {err.strerror}")
            continue
        for file in files:
            try:
                load_file(file)
            except ManifestError as err:
                problems.append(f"--manifests {file}: {err}")
    return problems


def kubeconfig_problem(settings: KubeSettings) -> str | None:
    """Loads the kubeconfig (or the service account's files) as serve would; no connection is made."""
    if not settings.kubeconfig and settings.master_url:
        return None
    what = f"--kubeconfig {settings.kubeconfig_path}" if settings.kubeconfig else "service account"
    try:
        asyncio.run(client_configuration(settings))
    except Exception as err:  # the client raises a variety of types for unreadable or invalid files
        return f"{what}: {err}"
    return None


def config_dir_problem(path: str) -> str | None:
    """An absent or empty directory is fine: the ConfigMap is mounted ``optional: true``."""
    try:
        parse_config(read_dir(Path(path)))
    except ConfigError as err:
        return f"--config-dir {Path(path) / err.key}: {err.problem}"
    except OSError as err:
        return f"--config-dir {path}: {err.strerror}"
    return None


def resolv_file_problem(path: str) -> str | None:
    """Unreadable, the cache would start with no default upstreams: worth failing a check for."""
    try:
        Path(path).read_bytes()
    except OSError as err:
        return f"--resolv-file {path}: {err.strerror or err}"
    return None
