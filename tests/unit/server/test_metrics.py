import re
import time

from steerlab.engine.batcher import wait_idle
from steerlab.generation.sampler import SamplingParams


def gauge(text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", text, re.MULTILINE).group(1))


def test_metrics_report_the_engine_queue_and_active_sequences(server, tiny_lab):
    client, _ = server
    engine = tiny_lab.engine
    engine.stop_token_ids = set()  # decode the full budget: the first sequence stays active
    params = SamplingParams(max_new_tokens=400, temperature=0)
    first = engine.submit([1, 2, 3], params)
    deadline = time.monotonic() + 30
    while engine.active_count == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    with engine.outside():  # hold the model: the engine steps no further and admits nothing
        engine.submit([1, 2, 3], SamplingParams(max_new_tokens=4, temperature=0))
        text = client.get("/metrics").text
    assert gauge(text, "steerlab_engine_active") == 1 and gauge(text, "steerlab_engine_queue") == 1
    first.cancel()
    wait_idle(engine)
    text = client.get("/metrics").text
    assert gauge(text, "steerlab_engine_active") == 0 and gauge(text, "steerlab_engine_queue") == 0
