"""Ray Serve host: the same HTTP app (serve/app.py) as an ingress deployment, one deployment per model.

::

    several models: HTTP -> HAProxy -> ingress (the FastAPI app of serve/app.py over an IngressForwarder)
                                          -> model deployment "minilm" (replicas, each an Engine)
                                          -> model deployment "antiberty" ...
    one model:      HTTP -> HAProxy -> model deployment "minilm" (each replica the app over its Engine)

HAProxy (serve/hosts/ray_haproxy.py) hands each connection to an ingress replica that answers HTTP
on its own port; with ``--ray-ingress proxy``, Ray Serve's Python proxy reads each request instead and
hands it to a replica over Ray.

The ingress answers every route, schema, error, the API key, ``/v1/models`` and the probes with the
code the native host runs; in place of an engine, its :class:`IngressForwarder` answers the app's calls
(:class:`serve.engine.AppEngine`): it picks the model as the engine does and sends the tokens' work to
that model's deployment. Each model replica runs the framework-free engine (admission, continuous
batching, the backend) on the model's artifact. When one model is served (a multi-head model is one),
the ingress is folded into its replicas (:class:`AnsweringReplica`): each replica runs the app over its
own engine (through :class:`ReplicaView`, which describes it as a deployment), so a request crosses no
Ray hop at all, and admission is the engine's own, as on the native host. Both objects use the
engine's public calls only; neither subclasses it.

Per-model settings of models.yaml's ``serve:`` block map to Ray's own knobs: ``replicas`` or
``autoscaling`` (``min_replicas``, ``max_replicas``, ``target_ongoing_requests``), ``cpus`` per
replica (its intra-op threads follow unless ``threads`` is set), ``max_queue_requests`` ->
``max_ongoing_requests`` per replica (at least ``max_batch_size``) and ``max_queued_requests``;
beyond them a request is answered 429 with ``Retry-After`` in the one error shape.

A changed artifact rolls out in place, as on the native host: every replica checks its artifact every
``--watch`` seconds (:mod:`serve.engine.watch`), loads the new one beside the old and switches with
no failed request (:meth:`serve.engine.Engine.reload`); no replica restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serve.engine import Answer, AppEngine, Engine, artifact_version, choose_address, served_addresses
from serve.errors import ServeError
from serve.metrics import ENV_DIR

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

    from fastapi import FastAPI

    from serve.config import Settings
    from serve.models import ServedModel
    from serve.tokenizer import Text

log = logging.getLogger("serve")
APP = "mlm-compress"
INGRESS_MAX_ONGOING = 4096  # the ingress only forwards; admission happens at the model deployments


def replica_entry(model: ServedModel) -> dict[str, Any]:
    """The model's models.yaml entry as a replica loads it: the resolved artifact, threads from ``cpus``."""
    o = model.spec.options
    threads = o.threads or max(1, int(o.cpus or 1))
    entry = model.spec.entry.model_copy(update={"artifact": model.spec.artifact,
                                                "serve": o.model_copy(update={"threads": threads})})
    return entry.model_dump(mode="json")


def _load(entry: dict[str, Any]) -> ServedModel:
    from compress.catalog import ModelEntry
    from serve.models import prepare_model

    return prepare_model(ModelEntry.model_validate(entry), Path("."), compress_missing=False)


ROLLS_OUT = ("on Ray a changed artifact rolls out by itself: every replica checks its artifact every --watch "
             "seconds and swaps live")


def scale_details(model: ServedModel) -> dict[str, Any]:
    """What /v1/models says of a model's deployment on Ray: replicas or autoscaling, CPUs per replica."""
    o = model.spec.options
    scale = o.autoscaling.model_dump() if o.autoscaling else {"replicas": o.replicas or 1}
    return {"host": "ray", "cpus_per_replica": o.cpus or 1, **scale}


class ReplicaView:
    """What the app of an answering replica asks of its engine (:class:`serve.engine.AppEngine`): the
    engine's answers, its model described as a Ray deployment, and reloads left to the watch (a reload
    request would reach one replica of several)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def served(self) -> dict[str, ServedModel]:
        return self.engine.served()

    async def infer(self, task: str, name: str | None, texts: Sequence[Text], params: dict[str, Any], *,
                    param: str = "inputs", path: str = "", client: Hashable | None = None) -> Answer:
        return await self.engine.infer(task, name, texts, params, param=param, path=path, client=client)

    def refusal(self, task: str, client: Hashable | None = None) -> ServeError | None:
        return self.engine.refusal(task, client)

    def describe(self, name: str) -> dict[str, Any]:
        return {**self.engine.describe(name), **scale_details(self.engine.models[name])}

    async def reload_requested(self, name: str) -> str:
        raise ServeError("invalid_request", ROLLS_OUT, "model_id")

    def live(self) -> tuple[bool, str]:
        return self.engine.live()

    def ready(self) -> tuple[bool, str]:
        return self.engine.ready()


class ModelReplica:
    """One replica of a model's deployment: the serving engine on the model's artifact, watched for changes."""

    async def __init__(self, entry: dict[str, Any], timeout: float, watch: float) -> None:  # type: ignore[misc]
        # Ray runs an async constructor on the replica's own event loop: the engine's loops start there
        from serve.engine.watch import watch_artifacts

        model = _load(entry)
        self.name = model.name
        self.engine = Engine([model], timeout=timeout)
        await self.engine.start()  # loaded and warmed up before Ray counts the replica as healthy
        self._watch = asyncio.create_task(watch_artifacts(self.engine, watch)) if watch > 0 else None
        self._push = _push_metrics()

    async def infer(self, task: str, address: str, texts: Sequence[Text], params: dict[str, Any], param: str
                    ) -> Answer | ServeError:
        """The engine's answer for ``address`` (the model, or one of its heads), or its ServeError as a
        value (it crosses back to the ingress intact)."""
        try:
            return await self.engine.infer(task, address, texts, params, param=param)
        except ServeError as e:
            return e

    def check_health(self) -> None:
        alive, why = self.engine.live()
        if not alive:
            raise RuntimeError(why)


class AnsweringReplica(ModelReplica):
    """A replica of the only model served, answering HTTP itself: the app of serve/app.py over its engine
    (Ray Serve builds it through ``__serve_build_asgi_app__`` once the constructor has run)."""

    async def __init__(self, entry: dict[str, Any], settings: Settings, watch: float) -> None:  # type: ignore[misc]
        await ModelReplica.__init__(self, entry, settings.timeout, watch)  # type: ignore[misc]
        self.settings = settings

    def __serve_build_asgi_app__(self) -> FastAPI:
        return _app(ReplicaView(self.engine), self.settings)


class IngressForwarder:
    """The ingress's answer to the app's calls (:class:`serve.engine.AppEngine`): picks the model as the
    engine does and forwards the request to that model's deployment (``handles``: one per model).

    Ready while every model's deployment has a running replica (Serve's status, polled by
    :meth:`watch_replicas`), so ``/ready`` tells a load balancer the truth about the models, not only the ingress.
    """

    def __init__(self, models: list[ServedModel], handles: dict[str, Any], *, app_name: str = APP) -> None:
        self.models = {m.name: m for m in models}
        self.handles = handles
        self.app_name = app_name
        self.running: dict[str, int] | None = None  # running replicas per model deployment; None: not known yet
        self.messages: dict[str, str] = {}  # what Serve says of a deployment (e.g. why it cannot be scheduled)
        self._versions: dict[str, tuple[Any, str]] = {}

    async def watch_replicas(self, every: float = 2.0) -> None:
        """Keep :attr:`running` current from Serve's status every ``every`` seconds; runs until cancelled."""
        from ray import serve

        while True:
            try:
                app = (await asyncio.to_thread(serve.status)).applications.get(self.app_name)
                deployments = app.deployments if app else {}
                self.running = {n: sum(k for s, k in d.replica_states.items() if s == "RUNNING")
                                for n, d in deployments.items()}
                self.messages = {n: d.message for n, d in deployments.items() if d.message}
            except Exception as e:  # e.g. the controller restarting: keep the last answer
                log.warning("could not read Serve's status (%s); /ready keeps its last answer", e)
            await asyncio.sleep(every)

    def served(self) -> dict[str, ServedModel]:
        return served_addresses(self.models.values())

    def live(self) -> tuple[bool, str]:
        return True, ""  # the ingress only forwards: it can answer while its process runs

    def ready(self) -> tuple[bool, str]:
        if self.running is None:
            return False, "the model deployments' state is not known yet"
        idle = [n for n in self.models if not self.running.get(n)]
        if not idle:
            return True, ""
        said = "; ".join(f"{n}: {self.messages[n]}" for n in idle if n in self.messages)
        return False, f"no running replica of {', '.join(idle)}" + (f" (Ray Serve: {said})" if said else "")

    async def infer(self, task: str, name: str | None, texts: Sequence[Text], params: dict[str, Any], *,
                    param: str = "inputs", path: str = "", client: Hashable | None = None) -> Answer:
        """The answer of the model's deployment; ``client`` is not used: each replica admits what Ray hands it."""
        from ray.serve.exceptions import BackPressureError

        served = self.served()
        address = choose_address(served, task, name, path)
        chosen = served[address].spec.name
        try:
            answer = await self.handles[chosen].infer.remote(task, address, texts, params, param)
        except BackPressureError:
            raise ServeError("overloaded", f"model {chosen!r} is at capacity on every replica and its queue is "
                             "full; retry after a second", headers={"Retry-After": "1"}) from None
        if isinstance(answer, ServeError):
            raise answer
        return answer

    def refusal(self, task: str, client: Hashable | None = None) -> ServeError | None:
        return None  # the model deployments' queues refuse (max_queued_requests), not the ingress

    def version(self, name: str) -> str:
        """The artifact's version on disk (what the replicas serve once their watch has seen it)."""
        from serve.engine.watch import signature

        artifact = self.models[name].spec.artifact
        seen, version = self._versions.get(name, (None, ""))
        if seen != signature(artifact) or not version:
            self._versions[name] = (signature(artifact), artifact_version(artifact))
        return self._versions[name][1]

    def describe(self, name: str) -> dict[str, Any]:
        o = self.models[name].spec.options
        return {"version": self.version(name), "streams": self.models[name].spec.streams(),
                "passes_ahead": o.passes_ahead, "max_batch_size": o.max_batch_size,
                "max_batch_tokens": o.max_batch_tokens, "max_queue_requests": o.max_queue_requests,
                "max_queue_tokens": o.max_queue_tokens, **scale_details(self.models[name])}

    async def reload_requested(self, name: str) -> str:
        raise ServeError("invalid_request", ROLLS_OUT, "model_id")


class IngressReplica:
    """The ingress of several models: the app of serve/app.py over an :class:`IngressForwarder` that sends
    each request to its model's deployment (``handles``: Ray passes the bound model deployments as handles)."""

    async def __init__(self, entries: list[dict[str, Any]], settings: Settings, *handles: Any) -> None:  # type: ignore[misc]
        from ray import serve

        models = [_load(e) for e in entries]
        self.engine = IngressForwarder(models, {m.name: h for m, h in zip(models, handles, strict=True)},
                                       app_name=serve.get_replica_context().app_name)
        self.settings = settings
        self._watch = asyncio.create_task(self.engine.watch_replicas())
        self._push = _push_metrics()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return _app(self.engine, self.settings)


def _push_metrics() -> asyncio.Task | None:
    """On a cluster, this replica's figures go to the metrics board (serve/hosts/ray_metrics.py)."""
    from ray import serve

    from serve.hosts.ray_metrics import on_cluster, push_forever

    context = serve.get_replica_context()
    replica = f"{context.deployment}#{context.replica_tag}"
    return asyncio.create_task(push_forever(context.app_name, replica)) if on_cluster() else None


def _app(engine: AppEngine, settings: Settings) -> FastAPI:
    """The app a replica answers HTTP with; its /metrics is the board's on a cluster. Requests reach it
    over the ingress's connections, each shared by many clients: a connection is no one client, so no
    429 is held (serve/backoff.py) and no client gets a full queue's kept share (serve/engine/admission.py)."""
    from ray import serve

    from serve.app import build_app
    from serve.hosts.ray_metrics import board_render, on_cluster

    render = board_render(serve.get_replica_context().app_name) if on_cluster() else None
    return build_app(engine, settings, render=render, clients=False)


def _actor_options(cpus: float, env: dict[str, str]) -> dict[str, Any]:
    return {"num_cpus": cpus, **({"runtime_env": {"env_vars": env}} if env else {})}


def _scale(model: ServedModel) -> dict[str, Any]:
    o = model.spec.options
    return {"autoscaling_config": o.autoscaling.model_dump()} if o.autoscaling else {"num_replicas": o.replicas or 1}


def model_deployment(model: ServedModel, settings: Settings, env: dict[str, str]) -> Any:
    """The model's Ray Serve deployment behind the ingress, bound: replicas or autoscaling, CPUs, admission
    limits (Ray's queues refuse: the ingress turns that into 429)."""
    from ray import serve

    o = model.spec.options
    deployment = serve.deployment(name=model.name, ray_actor_options=_actor_options(o.cpus or 1, env),
                                  max_ongoing_requests=max(o.max_queue_requests, o.max_batch_size),
                                  max_queued_requests=o.max_queue_requests, **_scale(model))(ModelReplica)
    return deployment.bind(replica_entry(model), settings.timeout, settings.watch_interval)


def answering_deployment(model: ServedModel, settings: Settings, env: dict[str, str]) -> Any:
    """The only model's deployment, its replicas answering HTTP: the engine's admission refuses (429), so
    Ray lets every request through to the replica it picks (probes included)."""
    from ray import serve

    o = model.spec.options
    deployment = serve.deployment(name=model.name, ray_actor_options=_actor_options(o.cpus or 1, env),
                                  max_ongoing_requests=INGRESS_MAX_ONGOING, **_scale(model))(
        serve.ingress()(AnsweringReplica))
    return deployment.bind(replica_entry(model), settings, settings.watch_interval)


def application(models: list[ServedModel], settings: Settings) -> Any:
    """The Ray Serve application: the ingress bound to every model's deployment, or the only model's
    answering deployment.

    On a local Ray every replica writes its Prometheus values to the server's multiprocess directory,
    so ``/metrics`` merges the engines' figures; on a cluster they go through the metrics board
    (serve/hosts/ray_metrics.py).
    """
    from ray import serve

    from serve.raycluster import started_here

    env = {ENV_DIR: os.environ[ENV_DIR]} if started_here() and os.environ.get(ENV_DIR) else {}
    if len(models) == 1:
        return answering_deployment(models[0], settings, env)
    ingress = serve.deployment(name="ingress", ray_actor_options=_actor_options(0, env),
                               max_ongoing_requests=INGRESS_MAX_ONGOING)(serve.ingress()(IngressReplica))
    return ingress.bind([replica_entry(m) for m in models], settings,
                        *[model_deployment(m, settings, env) for m in models])


def http_front(settings: Settings, workdir: Path) -> str:
    """Set up what answers HTTP in front of the replicas of a local Ray (before it starts: its workers
    inherit the environment) and say what it is: HAProxy (serve/hosts/ray_haproxy.py) or Serve's proxy."""
    from serve.hosts.ray_haproxy import haproxy_binary, haproxy_env

    if settings.ray_address is not None:
        return "the cluster's own (its environment decides: see the README)"
    real = haproxy_binary() if settings.ray_ingress == "haproxy" else None
    if real is None:
        if settings.ray_ingress == "haproxy":
            log.warning("no HAProxy binary (ray[serve] bundles one on Linux, or put haproxy on PATH): "
                        "Ray Serve's proxy answers HTTP, at a higher CPU cost per request")
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "0"
        return "Ray Serve's proxy"
    env = haproxy_env(settings.host, workdir, settings.drain_grace, real)
    os.environ.update(env)
    return (f"HAProxy, each replica answering HTTP itself (HAProxy stats on {settings.host}:"
            f"{env['RAY_SERVE_HAPROXY_STATS_PORT']}/stats)")


def serve(models: list[ServedModel], settings: Settings) -> None:
    """Deploy ``models`` on Ray Serve (a local Ray on 127.0.0.1 unless ``--ray-address``) until interrupted."""
    from serve.raycluster import import_ray

    workdir = Path(tempfile.mkdtemp(prefix="mlm-compress-ray-"))
    try:
        log.info("HTTP front: %s", http_front(settings, workdir))
        _run(import_ray(local=settings.ray_address is None), models, settings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(ray: Any, models: list[ServedModel], settings: Settings) -> None:
    from ray import serve as ray_serve

    from serve.hosts.ray_metrics import remove_board
    from serve.raycluster import connect

    started = connect(settings.ray_address)
    try:
        ray_serve.start(http_options={"host": settings.host, "port": settings.port})
        ray_serve.run(application(models, settings), name=APP, route_prefix="/", blocking=False)
        log.info("serving on Ray at http://%s:%d (%s)", settings.host, settings.port, ", ".join(m.name for m in models))
        while True:  # until SIGTERM/SIGINT (KeyboardInterrupt); Ray runs everything else
            time.sleep(3600)
    finally:
        if started:
            ray_serve.shutdown()
            ray.shutdown()
        else:
            remove_board(APP)
            ray_serve.delete(APP)


def app_builder(args: dict[str, str]) -> Any:
    """The application for a Ray Serve config file or a KubeRay RayService (``import_path:
    serve.hosts.ray:app_builder``, ``args: {config: /models/models.yaml, api_key_file: /secrets/key}``).

    Raises:
        ConfigError: a bad models.yaml, or an artifact missing (nothing is compressed here).
    """
    from serve.config import Settings, entries_to_serve, read_api_key
    from serve.models import prepare_models

    settings = Settings(config=Path(args.get("config", "models.yaml")), host_kind="ray",
                        watch_interval=float(args.get("watch", 2.0)), api_key=read_api_key(args.get("api_key_file")),
                        timeout=float(args.get("timeout", 30.0)))
    entries = entries_to_serve(settings)
    return application(prepare_models(entries, settings.config.resolve().parent, compress_missing=False), settings)
