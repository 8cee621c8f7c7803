"""The live Kubernetes API source, in layers that each use only the ones below:

- ``client``: settings; configuration (kubeconfig, in-cluster service account, ``--kube-master-url``),
  authentication (rotated tokens, exec plugins) and the HTTP session, all from kubernetes-asyncio,
  plus GETs bounded in time over sockets with TCP keepalive, that turn a failing status into
  ``ApiError``/``Gone``. Knows no resource and no record.
- ``streams``: one paginated LIST and one WATCH as async generators of raw JSON pages and events
  (framing, bookmarks, ERROR events as ``Gone``/``ApiError``, stalls as ``Stalled``). Keeps no state;
  an object's resourceVersion is read through ``cluster.objects``, the one reader of metadata.
- ``reflector``: one resource followed forever: LIST then WATCH, resourceVersion, backoff, restarts, metrics;
  converts through ``kubedns_py.cluster.objects`` and hands store events to its sink, nothing more.
- ``watchdog``: while a watch is silent, asks the server (a LIST of one object on a new connection)
  whether it answers at all and where its resourceVersion is: restarts the reflectors whose requests
  went unheard, relists those the server has gone back behind (an etcd restore).
- ``source``: ``KubeSource`` decides which resources to follow (discovery) and runs a reflector each.

Responses are read as raw JSON and turned straight into slim records (``cluster.objects``), because
kubernetes-asyncio's model objects for 100k endpoints would cost seconds and hundreds of megabytes.
"""
