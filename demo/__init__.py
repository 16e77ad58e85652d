"""Demo fleet: simulated llama-swap instances that speak llama-swap's HTTP API, for demos and load tests.

``python -m demo -n 5`` serves five simulated hosts on 127.0.0.1:19400.. with live traffic and writes a
provider registry for them; ``start_demo_fleet_in_background`` / ``demo_fleet_in_thread`` do the same for tests
on free ports. The wire contract is llama-swap after v250 (commit 0bdb372) as described in
``/work/shared/reference/llama-swap-api.md``: SSE framing and double-encoded envelopes, activity rows and
their query parameters, captures, in-flight deltas, performance samples, Prometheus text, hardware, unload,
auth, object-shaped error bodies.

Modules: ``simulator`` (state machine, inference path, activity/captures/events), ``instance`` (HTTP API),
``traffic`` (seeded clients), ``telemetry`` (synthetic host/GPU samples), ``activity`` (store, queries, token
parsing), ``wire`` (Go-style JSON/time/header/error encoding), ``fleet`` (many instances, one loop, registry).

**This is a simulation and deviates from real llama-swap** in these known ways:

* No real processes or upstream servers: model "processes" are state machines; ``/upstream/<model>/...``
  answers a minimal llama-server imitation (``/`` -> HTML 200, ``/health``; chat/completions POSTs are metered).
* Only ``/v1/chat/completions`` and ``/v1/completions`` are inference routes (no embeddings, audio, images,
  ``/v1/messages``, ``/v/...`` twins, multipart routes); no peers, profiles (always ``null``), selectors,
  matrix routing, config reload, ``/logs/stream``, ``sendLoadingState`` or CORS preflights.
* Groups support ``swap``/``exclusive`` but not ``persistent``; the scheduler is "wait until the models to
  evict are idle" rather than a strict FIFO queue; queue priority metadata is always ``fifo_priority: "0"``.
* Token counts are estimated (about 4 characters per token over a ChatML rendering of the messages); prompt
  caching is a common-prefix estimate; generated text is filler words.
* Captures are zlib- (not zstd-) compressed and the 5 MB budget counts zlib bytes; the activity store is a
  capped deque, not SQLite, and ``store.path`` persistence does not exist.
* Telemetry is synthetic (every GPU looks like an NVIDIA board); ``perf_every_s`` may be below 5 s.
* Log lines imitate llama-swap/llama-server wording but are not byte-identical; error messages are plausible
  texts, not copies of upstream's strings.
* Demo-only request header ``X-Demo-Fault: error|crash|start-fail`` triggers the failure paths.
* Each instance uses one fixed UTC offset (fleet hosts get varied ones) instead of following the local zone.
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
