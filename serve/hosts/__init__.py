"""Web hosts: thin adapters that put the engine's HTTP app (serve/app.py) on a server.

========  ===========================================================================
host      what
========  ===========================================================================
native    the default: one process, uvicorn on uvloop/httptools, the engine on the same
          event loop (inference and tokenization in their own threads); graceful drain
litserve  LitServe: its HTTP server process(es) and an inference worker process that runs the
          engine, requests crossing between them on LitServe's queues
ray       Ray Serve (``serve --ray``): one deployment per model, each replica the engine (and, with
          one model, the app too), HAProxy in front (ray.py, ray_haproxy.py, ray_metrics.py)
========  ===========================================================================
"""
