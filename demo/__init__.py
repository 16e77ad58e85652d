"""Demo fleet: simulated llama-swap instances that speak llama-swap's HTTP API, for demos and load tests.

``python -m demo -n 5`` serves five simulated hosts on 127.0.0.1:19400.. with live traffic and writes a
provider registry for them; ``start_demo_fleet_in_background`` / ``demo_fleet_in_thread`` do the same for tests
on free ports. ``python -m demo.single -config cfg.yaml -listen 127.0.0.1:PORT`` runs ONE simulated instance as its
own OS process, configured from a llama-swap config file and with llama-swap's process lifecycle (SIGTERM
stops, SIGKILL kills, SIGHUP reloads; ``store.path`` survives restarts) - the resilience scenarios run on it.
The wire contract is llama-swap after v250 (commit 0bdb372) as described in
``docs/llama-swap-api.md``: SSE framing and double-encoded envelopes, activity rows and
their query parameters, captures, in-flight deltas, performance samples, Prometheus text, hardware, unload,
auth, object-shaped error bodies.

Modules: ``simulator`` (state machine, inference path, activity/captures/events), ``instance`` (HTTP API),
``traffic`` (seeded clients), ``telemetry`` (synthetic host/GPU samples), ``activity`` (store, queries, token
parsing), ``wire`` (Go-style JSON/time/header/error encoding), ``fleet`` (many instances, one loop, registry),
``single`` (one instance as a process, llama-swap's config file and signals).

**This is a simulation and deviates from real llama-swap** in these known ways:

* No real processes or upstream servers: model "processes" are state machines; ``/upstream/<model>/...``
  answers a minimal llama-server imitation (``/`` -> HTML 200, ``/health``; chat/completions POSTs are metered).
* Only ``/v1/chat/completions`` and ``/v1/completions`` are inference routes (no embeddings, audio, images,
  ``/v1/messages``, ``/v/...`` twins, multipart routes); no peers, profiles (always ``null``), selectors,
  matrix routing, per-model logs (``/logs/stream/<model>`` stays silent, like a quiet model's),
  ``sendLoadingState`` or CORS preflights.
* Groups support ``swap``/``exclusive`` but not ``persistent``; the scheduler is "wait until the models to
  evict are idle" rather than a strict FIFO queue; queue priority metadata is always ``fifo_priority: "0"``.
* Token counts are estimated (about 4 characters per token over a ChatML rendering of the messages); prompt
  caching is a common-prefix estimate; generated text is filler words.
* Captures are zlib- (not zstd-) compressed and the 5 MB budget counts zlib bytes. The activity store is a
  capped deque in memory, or with ``store.path`` a JSON-lines file (not SQLite; same ids, never pruned, ids
  continue after a restart or ``kill -9``). Like llama-swap, a row is stored (and queryable) before its
  capture, and announced on ``/api/events`` after it; the gap is ``capture_delay_s`` (0 in the fleet, 0.05 s
  in ``demo.single``, microseconds in llama-swap).
* Config reload (``SimulatedInstance.reload``; SIGHUP or ``-watch-config`` in ``demo.single``): the old
  server's models vanish at once (their requests are cut; no ``stopping`` state is published) and
  the new ones start ``stopped``; streams close, captures and in-flight ids reset; boot marker, logs and
  activity stay (a new store only if ``store.path`` changed). A reload of an invalid file is logged and ignored.
* ``demo.single`` reads only the config subset the tests use (models with ``cmd``/``proxy``/``ttl``/``name``/
  ``description``/``unlisted``/``aliases``, groups, ``startPort``, ``captureBuffer``, ``performance``,
  ``metricsMaxInMemory``, ``store.path``, ``apiKeys``); ``cmd`` is never executed (no upstream processes, so a
  ``kill -9`` leaves no orphans), every model loads in ``-load-seconds``; ``logLevel``, ``healthCheckTimeout``,
  macros and other keys are ignored, not validated.
* ``POST /api/mcp`` (``demo.mcp``) follows llama-swap's MCP documentation (§16), which is newer than any
  binary that can be built here: it is shaped after the documented behaviour, not compared with a recording. A
  fleet host has no config file; its effective config is derived from its model specs.
* Telemetry is synthetic (every GPU looks like an NVIDIA board); ``perf_every_s`` may be below 5 s.
* Log lines imitate llama-swap/llama-server wording but are not byte-identical; error messages are the
  recorded ones where a recording has them (``tests/fixtures/llama_swap/``), plausible texts elsewhere.
* The simulated upstream is llama-server (its JSON answers say ``application/json; charset=utf-8``), or
  simple-responder for models with ``respond`` set. ``tests/demo/test_simulator_contract.py`` compares
  the simulator, with either upstream, with a recorded real llama-swap on every run and lists the
  deviations it keeps on purpose.
* Demo-only request header ``X-Demo-Fault: error|crash|start-fail`` triggers the failure paths.
* The simulator says what it is: ``"simulated": true`` in ``/api/version`` and ``/api/hardware`` (keys real
  llama-swap never sends; BooControl labels simulated providers and their runs, reports and exports by them).
* A fleet host's synthetic traffic pauses while a connection carrying BooControl's benchmark header
  (``X-BooControl-Bench``) is open and 15 s after (`demo.traffic.Takeover`), so a benchmark finds the host idle;
  real llama-swap ignores that header. Model names look like a real fleet's; the hostile names are for tests
  (``hostile=True``).
* Each instance uses one fixed UTC offset (fleet hosts get varied ones; ``demo.single`` takes the host's offset
  at start, ``TZ`` honoured) instead of following the local zone through DST changes. Activity timestamps are
  whole seconds in that offset and ``captured_at`` is UTC with nanoseconds, as in llama-swap.
* Activity/capture/perf memory is per instance; 500 instances with full 1000-row stores need about 2.5 GB.
"""

from demo.fleet import (
    DemoFleet,
    build_demo_instance,
    demo_fleet_in_thread,
    run_demo_fleet,
    serve_instances,
    start_demo_fleet_in_background,
    write_demo_registry,
)
from demo.instance import (
    GroupSpec,
    InferenceCall,
    InferenceReply,
    ModelSpec,
    SimulatedInstance,
    create_instance_app,
)
from demo.traffic import TrafficGenerator, TrafficProfile

__all__ = [
    "DemoFleet",
    "GroupSpec",
    "InferenceCall",
    "InferenceReply",
    "ModelSpec",
    "SimulatedInstance",
    "TrafficGenerator",
    "TrafficProfile",
    "build_demo_instance",
    "create_instance_app",
    "demo_fleet_in_thread",
    "run_demo_fleet",
    "serve_instances",
    "start_demo_fleet_in_background",
    "write_demo_registry",
]
