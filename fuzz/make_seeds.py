"""Writes the hand-made seeds of `prosa-fuzz` under fuzz/seeds/ (the GGUF and .npy seeds come from
`prosa-fuzz make-seeds`). Run from the repository root with any Python 3 (pyarrow for the parquet
seed: `pip install pyarrow`):

    python3 fuzz/make_seeds.py && cargo run -p prosa-fuzz -- make-seeds

Small files only: a fuzzer mutates a seed thousands of times a second.
"""

import json
import shutil
import struct
from pathlib import Path

FIX = Path("crates/prosa/tests/fixtures")
SEEDS = Path("fuzz/seeds")


def put(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def copy(target, name, source):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, d / name)


put("csv", "tweets.csv", 'text,label\n"I love it, really",positive\nhate this,negative\n"a ""quoted"" word",neutral\n')
put("csv", "bom-multiline.csv", '\ufefftext,label\n"two\nlines",pos\nplain,neg\n')
put("csv", "integer-labels.csv", "text,label,extra\nhello,1,x\nworld,0,y\n")
put("tsv", "pairs.tsv", "text\tlabel\nhello world\tpos\nbad day\tneg\n")
put("jsonl", "rows.jsonl", '{"text": "hello", "label": "pos"}\n{"text": "bye", "label": 0}\n\n{"text": "ol\\u00e1", "label": "neg", "other": [1, 2]}\n')
put("text", "lines.txt", "first line\n\nsecond line with ünïcödé\nthird\r\n")
put("conll", "ner.conll", "-DOCSTART- O\n\nMaria B-PER\nSilva I-PER\nworks O\nat O\nPetrobras B-ORG\n\nPorto B-LOC\nAlegre I-LOC\n")
put("conll", "four-columns.conll", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n")
put("word2vec-text", "small.vec", "3 4\nking 0.1 0.2 0.3 0.4\nqueen 0.2 0.1 0.4 0.3\nman -0.1 0.5 0.0 1e-3\n")
put("glove", "small.glove.txt", "the 0.418 0.24968 -0.41242\n, 0.013441 0.23682 -0.16899\nking 0.5 -0.1 0.3\n")
binary = b"2 3\n" + b"king " + struct.pack("<3f", 0.1, 0.2, 0.3) + b"\n" + b"queen " + struct.pack("<3f", 0.3, 0.2, 0.1) + b"\n"
put("word2vec-binary", "small.bin", binary)
try:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = SEEDS / "parquet"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"index": ["king", "queen", "man", "woman"]}), out / "index.parquet")
except ImportError:
    print("pyarrow missing: parquet seed not written")
header = {"a.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
          "b.bias": {"dtype": "F16", "shape": [3], "data_offsets": [16, 22]},
          "__metadata__": {"format": "pt"}}
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
put("safetensors", "two-tensors.safetensors", struct.pack("<Q", len(h)) + h + struct.pack("<4f", 1, 2, 3, 4) + b"\x00\x3c" * 3)
copy("safetensors", "bert-tiny.safetensors", FIX / "pipelines/bert-tiny/model.safetensors")
for family, folder in [("bert", "pipelines/bert-tiny"), ("gpt2", "decoders/gpt2"), ("llama", "decoders/llama"),
                       ("t5", "seq2seq/t5-v1_0"), ("bart", "seq2seq/bart-tiny"), ("marian", "seq2seq/marian-spm")]:
    copy("config", f"{family}.json", FIX / folder / "config.json")
copy("tokenizer", "wordpiece.json", FIX / "pipelines/bert-tiny/tokenizer.json")
copy("tokenizer", "word-level.json", FIX / "decoders/word-level-96.tokenizer.json")
copy("sentencepiece", "marian-target.spm", FIX / "seq2seq/marian-spm/target.spm")


def mo(pairs):
    """A GNU .mo catalogue (little-endian, no hash table)."""
    pairs = sorted(pairs)
    n = len(pairs)
    ids = b"".join(k.encode() + b"\0" for k, _ in pairs)
    strs = b"".join(v.encode() + b"\0" for _, v in pairs)
    start = 28 + 16 * n
    table_o, table_t, off = [], [], start
    for k, _ in pairs:
        table_o.append((len(k.encode()), off))
        off += len(k.encode()) + 1
    for _, v in pairs:
        table_t.append((len(v.encode()), off))
        off += len(v.encode()) + 1
    head = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    body = b"".join(struct.pack("<2I", *t) for t in table_o) + b"".join(struct.pack("<2I", *t) for t in table_t)
    return head + body + ids + strs


put("mo", "pt_BR.mo", mo([("", "Content-Type: text/plain; charset=UTF-8\n"), ("Open", "Abrir"),
                          ("&Save", "_Salvar"), ("file\0files", "arquivo\0arquivos")]))
copy("toml", "experiment.toml", "docs/experiment.toml")
put("toml", "small.toml", '[data]\nmax_rows = 100\n\n[model]\narch = "lstm"\nhidden_size = 8\ndropout = 0.1\n\n[training]\nnum_train_epochs = 2\nlearning_rate = 0.01\n')
put("chat-template", "chatml.jinja", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
put("chat-template", "llama2.jinja", "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}{% set messages = messages[1:] %}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'].strip() + ' [/INST]' }}{% else %}{{ ' ' + message['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
put("chat-template", "zephyr.jinja", "{% for message in messages %}{{ '<|' + message.role + '|>\\n' + message.content | trim + eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
print("seeds written to", SEEDS)
