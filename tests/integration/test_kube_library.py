"""serve loads kubernetes-asyncio's client without its generated models, and a program that wants the
models still gets them. Each case runs in a fresh interpreter: this one may have the package loaded."""

from __future__ import annotations

import subprocess
import sys

MODELS = "kubernetes_asyncio.client.models.v1_pod"


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_client_loads_without_the_models() -> None:
    code = (
        "import sys\n"
        "from kubedns_py.sources.kube.client import ApiClient, Configuration, kube_config\n"
        f"print({MODELS!r} in sys.modules, 'kubernetes_asyncio.client.api.core_v1_api' in sys.modules,"
        " ApiClient.__module__, Configuration.__module__, callable(kube_config.load_kube_config))"
    )
    assert run(code) == (
        "False False kubernetes_asyncio.client.api_client kubernetes_asyncio.client.configuration True"
    )


def test_the_whole_package_is_there_when_asked_for_afterwards() -> None:
    code = (
        "from kubedns_py.sources.kube.client import ApiClient\n"
        "from kubernetes_asyncio import client, watch\n"
        "import kubernetes_asyncio.client.api_client as api_client\n"
        "print(client.CoreV1Api.__name__, client.V1Pod.__name__, watch.Watch.__name__,"
        " client.ApiClient is ApiClient, hasattr(client, 'no.such'),"
        " api_client.kubernetes_asyncio.client.models.V1PodList.__name__)"
    )
    assert run(code) == "CoreV1Api V1Pod Watch True False V1PodList"


def test_a_package_loaded_first_is_used_as_it_is() -> None:
    code = (
        "import kubernetes_asyncio.client as whole\n"
        "from kubedns_py.sources.kube.client import ApiClient\n"
        "print(ApiClient is whole.ApiClient, hasattr(whole, 'CoreV1Api'))"
    )
    assert run(code) == "True True"
