"""Crafted features and a real local OpenAI-compatible HTTP server, shared by the label/score/search tests.

The server is a stand-in for a remote LLM (it speaks the wire protocol over a real socket); what it
answers is decided by a function the test passes in.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from steerlab.features.schema import Example, Feature, FeatureStats, TokenEffect, feature_uuid

SAE_ID = "tiny/model.layers.1/topk-32"

FRENCH = [
    "Le chat est sur la table et le chien dort dans le jardin.",
    "Nous avons mangé une bonne soupe avec du pain ce soir.",
    "Elle habite à Paris depuis dix ans avec sa famille.",
    "Je ne sais pas pourquoi il est parti si tôt ce matin.",
    "Les enfants jouent dans la cour de l'école après la classe.",
    "Il fait très beau aujourd'hui, allons nous promener au parc.",
    "Mon frère travaille dans une banque au centre de la ville.",
    "Nous partons en vacances à la mer pendant tout le mois d'août.",
    "La voiture rouge est garée devant la maison de mes parents.",
    "Pouvez-vous me dire où se trouve la gare, s'il vous plaît?",
    "Le professeur explique la leçon aux élèves de la classe.",
    "Ils ont acheté des fleurs pour l'anniversaire de leur mère.",
]
PYTHON = [
    "def add(a, b):\n    return a + b",
    "def parse_args(argv):\n    parser = argparse.ArgumentParser()\n    return parser.parse_args(argv)",
    "class Stack:\n    def __init__(self):\n        self.items = []",
    "def read_file(path):\n    with open(path) as fh:\n        return fh.read()",
    "import os\nfor name in os.listdir('.'):\n    print(name)",
    "def is_even(n):\n    return n % 2 == 0",
    "def main():\n    args = parse_args(sys.argv[1:])\n    run(args)",
    "if __name__ == '__main__':\n    main()",
    "def greet(name):\n    print(f'Hello, {name}')",
    "try:\n    value = int(text)\nexcept ValueError:\n    value = 0",
    "def area(radius):\n    return 3.14159 * radius ** 2",
    "def __repr__(self):\n    return f'Stack({self.items!r})'",
]
ENGLISH = [
    "The weather was cold and grey for most of the week in the north.",
    "She walked to the store to buy some milk, eggs and a loaf of bread.",
    "Our team met on Tuesday to plan the schedule for the next quarter.",
    "The old bridge over the river was repaired after the long winter.",
    "He spent the afternoon reading a history of the Roman empire.",
    "Most people prefer to travel by train when the distance is short.",
    "The museum opens at nine and closes early on Sunday evenings.",
    "They planted tomatoes and beans along the fence in the garden.",
    "A good night of sleep helps you remember what you learned.",
    "The meeting was postponed until the manager returned from his trip.",
    "Children often ask questions that adults find hard to answer.",
    "The library lends books, films and music to anyone with a card.",
]
BECAUSE = [
    "We stayed inside because it was raining all day.",
    "She smiled because the news was better than expected.",
    "The match was cancelled because too many players were sick.",
    "He took the bus because his car would not start.",
    "They left early because the film was boring.",
    "I bought two because the shop had a sale.",
    "The road was closed because of the snow.",
    "Prices rose because demand was high.",
    "We laughed because the joke was silly.",
    "The plant died because nobody watered it.",
    "She studied late because the exam was tomorrow.",
    "He apologized because he had forgotten her birthday.",
]


def make_example(text: str, kind: str, rank: int, fire: Callable[[str], bool] | None, scale: float = 1.0) -> Example:
    """Word-level tokens (leading spaces kept, like a BPE's) with activations where ``fire(word)``."""
    tokens = re.findall(r"\s*\S+", text)
    acts = [scale * (1.0 + 0.1 * (i % 3)) if fire and fire(t) else 0.0 for i, t in enumerate(tokens)]
    top = max(range(len(acts)), key=lambda i: acts[i])
    return Example(
        kind=kind,
        rank=rank,
        tokens=tokens,
        token_ids=[hash(t) % 1000 for t in tokens],
        acts=acts,
        max_act=acts[top],
        max_position=top if acts[top] > 0 else 0,
        quantile=0.5 if kind == "quantile" else None,
    )


def make_feature(
    index: int, texts: list[str], fire: Callable[[str], bool], negatives: list[str], promoted: list[str] = ()
) -> Feature:
    """Top examples from the first 8 texts, quantile examples (held out) from the rest, English negatives."""
    examples = [make_example(t, "top", r, fire) for r, t in enumerate(texts[:8])]
    examples += [make_example(t, "quantile", r, fire, scale=0.5) for r, t in enumerate(texts[8:])]
    examples += [make_example(t, "nonactivating", r, None) for r, t in enumerate(negatives)]
    effects = [TokenEffect(token=t, token_id=i, value=1.0 - 0.1 * i) for i, t in enumerate(promoted)]
    return Feature(
        uuid=feature_uuid(SAE_ID, index),
        sae_id=SAE_ID,
        index=index,
        examples=examples,
        promoted=effects,
        stats=FeatureStats(density=0.01, max_act=1.2, mean_act=0.6),
    )


def crafted_features() -> dict[str, Feature]:
    """Three features with obvious meanings: French text, Python code, the word "because"."""
    return {
        "french": make_feature(0, FRENCH, lambda t: True, ENGLISH[:8], promoted=[" le", " la", " de", " et"]),
        "python": make_feature(1, PYTHON, lambda t: True, ENGLISH[4:], promoted=[" def", " return", "(", ":"]),
        "because": make_feature(2, BECAUSE, lambda t: t.strip() == "because", ENGLISH[:8]),
    }


class FakeLLMServer:
    """A real HTTP server on 127.0.0.1 answering ``POST /v1/chat/completions`` with ``respond(messages)``.

    ``respond`` returns the answer text, or a (status, body) tuple for raw responses; ``delay_s`` makes
    every request slow (a server that times out). Requests are recorded for assertions.
    """

    def __init__(self, respond: Callable[[list[dict]], object], delay_s: float = 0.0):
        self.respond, self.delay_s, self.requests = respond, delay_s, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if server.delay_s:
                    time.sleep(server.delay_s)
                answer = server.respond(body["messages"])
                status, payload = (
                    answer
                    if isinstance(answer, tuple)
                    else (
                        200,
                        json.dumps(
                            {
                                "id": "x",
                                "object": "chat.completion",
                                "model": body["model"],
                                "choices": [
                                    {
                                        "index": 0,
                                        "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": answer},
                                    }
                                ],
                            }
                        ),
                    )
                )
                data = payload.encode() if isinstance(payload, str) else payload
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeLLMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
