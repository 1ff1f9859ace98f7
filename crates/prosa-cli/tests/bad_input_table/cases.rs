// The cases of the bad-input table (included by `bad_input_table.rs`): name(category; what the
// folder holds; the arguments; pieces the message must contain).

cases! {
    // ---- Data files: CSV, TSV, JSONL, CoNLL, plain text ----
    csv_empty_file("Data files"; [Write("d.csv", b"")]; "data stats --data d.csv"; ["d.csv"]);
    csv_header_only("Data files"; [Write("d.csv", b"text,label\n")]; "data stats --data d.csv"; ["d.csv"]);
    csv_missing_text_column("Data files"; [Write("d.csv", b"texto,label\noi,a\n")]; "data stats --data d.csv"; ["d.csv", "text"]);
    csv_missing_label_column("Data files"; [Write("d.csv", b"text,rotulo\noi,a\n")]; "data stats --data d.csv"; ["d.csv", "label"]);
    csv_unterminated_quote("Data files"; [Write("d.csv", b"text,label\nok,a\n\"never closed,b\n")]; "data stats --data d.csv"; ["d.csv", "line 3", "unterminated"]);
    csv_too_many_fields("Data files"; [Write("d.csv", b"text,label\nok,a,extra\n")]; "data stats --data d.csv"; ["d.csv", "line 2"]);
    csv_too_few_fields("Data files"; [Write("d.csv", b"text,label\nok,a\nonly\n")]; "data stats --data d.csv"; ["d.csv", "line 3"]);
    csv_not_utf8("Data files"; [Write("d.csv", b"text,label\n\xe9t\xe9,a\n")]; "data stats --data d.csv"; ["d.csv", "line 2", "latin-1"]);
    csv_text_column_twice("Data files"; [Write("d.csv", b"text,text,label\na,b,c\n")]; "data stats --data d.csv"; ["d.csv", "text"]);
    tsv_wrong_field_count("Data files"; [Write("d.tsv", b"text\tlabel\na\tb\tc\n")]; "data stats --data d.tsv"; ["d.tsv", "line 2"]);
    jsonl_line_not_an_object("Data files"; [Write("d.jsonl", b"{\"text\":\"a\",\"label\":\"x\"}\n[1,2]\n")]; "data stats --data d.jsonl"; ["d.jsonl", "line 2"]);
    jsonl_broken_json("Data files"; [Write("d.jsonl", b"{\"text\": \"a\",\n")]; "data stats --data d.jsonl"; ["d.jsonl", "line 1"]);
    jsonl_numeric_text("Data files"; [Write("d.jsonl", b"{\"text\": 5, \"label\": \"a\"}\n")]; "data stats --data d.jsonl"; ["d.jsonl", "line 1", "text"]);
    jsonl_missing_label("Data files"; [Write("d.jsonl", b"{\"text\": \"a\"}\n")]; "data stats --data d.jsonl"; ["d.jsonl", "label"]);
    jsonl_label_is_an_object("Data files"; [Write("d.jsonl", b"{\"text\": \"a\", \"label\": {\"x\": 1}}\n")]; "data stats --data d.jsonl"; ["d.jsonl", "line 1", "label"]);
    data_file_missing("Data files"; []; "data stats --data nowhere.csv"; ["nowhere.csv"]);
    data_file_is_a_folder("Data files"; [Folder("d.csv")]; "data stats --data d.csv"; ["d.csv"]);
    data_unknown_format("Data files"; [Write("d.csv", b"text,label\na,b\n")]; "data stats --data d.csv --format xml"; ["--format", "xml"]);
    data_unknown_encoding("Data files"; [Write("d.csv", b"text,label\na,b\n")]; "data stats --data d.csv --encoding ebcdic"; ["--encoding"]);
    conll_column_mismatch("Data files"; [Copy("crates/prosa/tests/fixtures/elmo", "elmo"), Write("d.conll", b"EU B-ORG\nrejects O\nGerman\n")]; "train --task token-classification --arch elmo --pretrained elmo --data d.conll --test-data d.conll --output-dir run"; ["d.conll", "line 3"]);
    conll_empty("Data files"; [Copy("crates/prosa/tests/fixtures/elmo", "elmo"), Write("d.conll", b"\n\n")]; "train --task token-classification --arch elmo --pretrained elmo --data d.conll --test-data d.conll --output-dir run"; ["d.conll"]);
    conll_not_utf8("Data files"; [Copy("crates/prosa/tests/fixtures/elmo", "elmo"), Write("d.conll", b"S\xe3o B-LOC\n")]; "train --task token-classification --arch elmo --pretrained elmo --data d.conll --test-data d.conll --output-dir run"; ["d.conll", "line 1"]);
    conll_unknown_tag_in_test("Data files"; [Copy("crates/prosa/tests/fixtures/elmo", "elmo"), Write("train.conll", b"Lisboa B-LOC\n\nMaria B-PER\n\nPorto B-LOC\n\nAna B-PER\n"), Write("test.conll", b"Petrobras B-ORG\n")]; "train --task token-classification --arch elmo --pretrained elmo --data train.conll --test-data test.conll --output-dir run --epochs 1"; ["test.conll", "line 1", "B-ORG"]);
    text_corpus_empty("Data files"; [Write("c.txt", b"")]; "pretrain --arch awd-lstm --corpus c.txt --output-dir run"; ["c.txt"]);
    text_corpus_missing("Data files"; []; "pretrain --corpus nowhere --output-dir run"; ["nowhere"]);
    text_corpus_not_utf8("Data files"; [Write("c.txt", b"ol\xe1 mundo\n")]; "pretrain --arch awd-lstm --corpus c.txt --output-dir run"; ["c.txt"]);
    translation_pairs_one_column("Data files"; [Write("p.tsv", b"source\ttarget\nhello\n")]; "train --task translation --data p.tsv --output-dir run"; ["p.tsv", "line 2"]);
    metrics_line_counts_differ("Data files"; [Write("h.txt", b"a\nb\n"), Write("r.txt", b"a\n")]; "metrics bleu --hyp h.txt --ref r.txt"; ["r.txt", "h.txt"]);
    metrics_reference_missing("Data files"; [Write("h.txt", b"a\n")]; "metrics rouge --hyp h.txt --ref nowhere.txt"; ["nowhere.txt"]);
    predict_input_file_missing("Data files"; []; "predict --model nowhere --input in.txt"; ["in.txt"]);

    // ---- Word vectors ----
    w2v_binary_header_promises_too_much("Word vectors"; [Write("v.bin", b"1000000000000 50\n")]; "vectors neighbors --vectors v.bin --format word2vec-binary king"; ["v.bin", "header promises"]);
    w2v_binary_truncated("Word vectors"; [Write("v.bin", b"2 3\nking \x00\x00\x80\x3f")]; "vectors neighbors --vectors v.bin --format word2vec-binary king"; ["v.bin"]);
    w2v_binary_zero_dimensions("Word vectors"; [Write("v.bin", b"2 0\n")]; "vectors neighbors --vectors v.bin --format word2vec-binary king"; ["v.bin"]);
    w2v_text_bad_number("Word vectors"; [Write("v.txt", b"2 3\nking 0.1 x 0.3\nqueen 0.1 0.2 0.3\n")]; "vectors neighbors --vectors v.txt --format word2vec-text king"; ["v.txt", "line 2"]);
    w2v_text_short_row("Word vectors"; [Write("v.txt", b"2 3\nking 0.1 0.2\nqueen 0.1 0.2 0.3\n")]; "vectors neighbors --vectors v.txt --format word2vec-text king"; ["v.txt", "line 2"]);
    w2v_text_fewer_rows_than_header("Word vectors"; [Write("v.txt", b"3 2\nking 0.1 0.2\nqueen 0.1 0.2\n")]; "vectors neighbors --vectors v.txt --format word2vec-text king"; ["v.txt"]);
    w2v_text_header_not_numbers("Word vectors"; [Write("v.txt", b"many words\nking 0.1 0.2\n")]; "vectors neighbors --vectors v.txt --format word2vec-text king"; ["v.txt", "line 1"]);
    glove_rows_of_different_widths("Word vectors"; [Write("g.txt", b"king 0.1 0.2 0.3\nqueen 0.1 0.2\n")]; "vectors neighbors --vectors g.txt --format glove king"; ["g.txt", "line 2"]);
    glove_not_a_number("Word vectors"; [Write("g.txt", b"king 0.1 nan? 0.3\n")]; "vectors neighbors --vectors g.txt --format glove king"; ["g.txt", "line 1"]);
    vectors_empty_file("Word vectors"; [Write("v.txt", b"")]; "vectors neighbors --vectors v.txt king"; ["v.txt"]);
    vectors_file_missing("Word vectors"; []; "vectors neighbors --vectors nowhere.bin king"; ["nowhere.bin"]);
    npy_bad_magic("Word vectors"; [Write("v.npy", b"NOTNUMPY"), Write("w.txt", b"king\n")]; "vectors neighbors --vectors v.npy --index w.txt king"; ["v.npy"]);
    npy_shape_past_the_file("Word vectors"; [Write("v.npy", b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 300), }          \n"), Write("w.txt", b"king\n")]; "vectors neighbors --vectors v.npy --index w.txt king"; ["v.npy"]);
    npy_integer_dtype("Word vectors"; [Write("v.npy", b"\x93NUMPY\x01\x00\x46\x00{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }                \n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), Write("w.txt", b"king\n")]; "vectors neighbors --vectors v.npy --index w.txt king"; ["v.npy"]);
    npy_index_of_other_length("Word vectors"; [Write("v.npy", b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }                \n\x00\x00\x80\x3f\x00\x00\x80\x3f"), Write("w.txt", b"king\nqueen\n")]; "vectors neighbors --vectors v.npy --index w.txt king"; ["w.txt"]);
    npy_header_length_past_the_file("Word vectors"; [Copy("fuzz/findings/npy/x.abort-header-length-2gb.npy", "v.npy"), Write("w.txt", b"king\n")]; "vectors neighbors --vectors v.npy --index w.txt king"; ["v.npy", "header claims"]);
    parquet_that_panics_its_decoder("Word vectors"; [Copy("fuzz/seeds/npy/four-by-three.npy", "v.npy"), Copy("fuzz/findings/parquet/index.guarded-2b6aba492265acea.parquet", "w.parquet")]; "vectors neighbors --vectors v.npy --index w.parquet king"; ["w.parquet", "malformed parquet"]);
    parquet_index_not_parquet("Word vectors"; [Write("v.npy", b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }                \n\x00\x00\x80\x3f\x00\x00\x80\x3f"), Write("w.parquet", b"PAR1 not really PAR1")]; "vectors neighbors --vectors v.npy --index w.parquet king"; ["w.parquet"]);
    analogies_question_before_section("Word vectors"; [Write("v.txt", b"2 2\nking 0.1 0.2\nqueen 0.2 0.1\n"), Write("q.txt", b"king queen king queen\n")]; "vectors evaluate --vectors v.txt --analogies q.txt"; ["q.txt", "line 1"]);
    similarity_no_usable_pair("Word vectors"; [Write("v.txt", b"2 2\nking 0.1 0.2\nqueen 0.2 0.1\n"), Write("s.tsv", b"king\tqueen\thigh\n")]; "vectors evaluate --vectors v.txt --similarity s.tsv"; ["s.tsv", "no word pair"]);
    vectors_train_empty_corpus("Word vectors"; [Write("c.txt", b"")]; "vectors train --corpus c.txt --out v.bin"; ["c.txt"]);
    vectors_train_all_under_min_count("Word vectors"; [Write("c.txt", b"one two three\n")]; "vectors train --corpus c.txt --out v.bin --min-count 5"; ["c.txt", "min_count"]);
    vectors_train_zero_dim("Word vectors"; [Write("c.txt", b"a b c a b c\n")]; "vectors train --corpus c.txt --out v.bin --min-count 1 --dim 0"; ["'dim'"]);
    vectors_train_zero_window("Word vectors"; [Write("c.txt", b"a b c a b c\n")]; "vectors train --corpus c.txt --out v.bin --min-count 1 --window 0"; ["'window'"]);
    vectors_train_negative_alpha("Word vectors"; [Write("c.txt", b"a b c a b c\n")]; "vectors train --corpus c.txt --out v.bin --min-count 1 --alpha=-0.1"; ["alpha"]);
    vectors_train_negative_sample("Word vectors"; [Write("c.txt", b"a b c a b c\n")]; "vectors train --corpus c.txt --out v.bin --min-count 1 --sample=-1"; ["sample"]);
    vectors_train_no_negatives_no_hs("Word vectors"; [Write("c.txt", b"a b c a b c\n")]; "vectors train --corpus c.txt --out v.bin --min-count 1 --negative 0"; ["negative"]);

    // ---- Model folders: config.json of every family ----
    folder_missing("Model folders"; []; "pipeline fill-mask --model nowhere [MASK]"; ["nowhere"]);
    config_missing("Model folders"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Remove("m/config.json")]; "pipeline fill-mask --model m [MASK]"; ["config.json"]);
    config_not_json("Model folders"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Write("m/config.json", b"{\"hidden_size\": 32,")]; "pipeline fill-mask --model m [MASK]"; ["config.json"]);
    bert_hidden_not_divisible_by_heads("Model folders"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Json("m/config.json", "num_attention_heads", "5")]; "pipeline fill-mask --model m [MASK]"; ["config.json", "attention heads"]);
    bert_zero_heads("Model folders"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Json("m/config.json", "num_attention_heads", "0")]; "pipeline fill-mask --model m [MASK]"; ["config.json", "num_attention_heads"]);
    bert_absurd_hidden_size("Model folders"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Json("m/config.json", "hidden_size", "1000000000")]; "pipeline fill-mask --model m [MASK]"; ["config.json", "hidden_size"]);
    bert_negative_layers("Model folders"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Json("m/config.json", "num_hidden_layers", "-1")]; "pipeline fill-mask --model m [MASK]"; ["config.json", "num_hidden_layers"]);
    bert_zero_positions("Model folders"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Json("m/config.json", "max_position_embeddings", "0")]; "pipeline fill-mask --model m [MASK]"; ["config.json", "max_position_embeddings"]);
    bert_vocab_size_as_string("Model folders"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Json("m/config.json", "vocab_size", "\"big\"")]; "pipeline fill-mask --model m [MASK]"; ["config.json", "vocab_size"]);
    unknown_model_type("Model folders"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Json("m/config.json", "model_type", "\"mamba\""), Json("m/config.json", "architectures", "[\"MambaForCausalLM\"]")]; "pipeline fill-mask --model m [MASK]"; ["config.json", "mamba"]);
    gpt2_heads_do_not_divide("Model folders"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Json("m/config.json", "n_head", "5")]; "generate --model m --prompt a"; ["config.json", "n_head"]);
    gpt2_zero_width("Model folders"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Json("m/config.json", "n_embd", "0")]; "generate --model m --prompt a"; ["config.json", "hidden_size"]);
    gpt2_absurd_vocabulary("Model folders"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Json("m/config.json", "vocab_size", "100000000000")]; "generate --model m --prompt a"; ["config.json", "vocab_size"]);
    llama_kv_heads_do_not_divide("Model folders"; [Copy("crates/prosa/tests/fixtures/decoders/llama", "m"), Json("m/config.json", "num_key_value_heads", "3")]; "generate --model m --prompt a"; ["config.json", "key/value heads"]);
    llama_zero_intermediate("Model folders"; [Copy("crates/prosa/tests/fixtures/decoders/llama", "m"), Json("m/config.json", "intermediate_size", "0")]; "generate --model m --prompt a"; ["config.json", "intermediate_size"]);
    t5_unknown_feed_forward_proj("Model folders"; [Copy("crates/prosa/tests/fixtures/seq2seq/t5-v1_0", "m"), Copy("crates/prosa/tests/fixtures/seq2seq/t5-spm/spiece.model", "m/spiece.model"), Json("m/config.json", "feed_forward_proj", "\"swiglu-ish\"")]; "generate --model m --prompt a"; ["config.json", "feed_forward_proj"]);
    t5_no_decoder_start_token("Model folders"; [Copy("crates/prosa/tests/fixtures/seq2seq/t5-v1_0", "m"), Copy("crates/prosa/tests/fixtures/seq2seq/t5-spm/spiece.model", "m/spiece.model"), Json("m/config.json", "decoder_start_token_id", "null"), Json("m/config.json", "pad_token_id", "null")]; "generate --model m --prompt a"; ["decoder_start_token_id"]);
    t5_zero_relative_buckets("Model folders"; [Copy("crates/prosa/tests/fixtures/seq2seq/t5-v1_0", "m"), Copy("crates/prosa/tests/fixtures/seq2seq/t5-spm/spiece.model", "m/spiece.model"), Json("m/config.json", "relative_attention_num_buckets", "0")]; "generate --model m --prompt a"; ["config.json", "relative_attention_num_buckets"]);
    marian_missing_target_spm("Model folders"; [Copy("crates/prosa/tests/fixtures/seq2seq/marian-spm", "m"), Remove("m/target.spm")]; "generate --model m --prompt a"; ["target.spm"]);
    marian_source_spm_not_sentencepiece("Model folders"; [Copy("crates/prosa/tests/fixtures/seq2seq/marian-spm", "m"), Write("m/source.spm", b"not a protobuf at all \xff\xff\xff")]; "generate --model m --prompt a"; ["source.spm"]);
    marian_vocab_not_json("Model folders"; [Copy("crates/prosa/tests/fixtures/seq2seq/marian-spm", "m"), Write("m/vocab.json", b"[1, 2")]; "generate --model m --prompt a"; ["vocab.json"]);
    marian_heads_do_not_divide("Model folders"; [Copy("crates/prosa/tests/fixtures/seq2seq/marian-spm", "m"), Json("m/config.json", "encoder_attention_heads", "3")]; "generate --model m --prompt a"; ["config.json", "encoder_attention_heads"]);
    generation_config_not_json("Model folders"; [Copy("crates/prosa/tests/fixtures/seq2seq/marian-spm", "m"), Write("m/generation_config.json", b"{max_length: 5}")]; "generate --model m --prompt a"; ["generation_config.json"]);
    classifier_labels_disagree_with_head("Model folders"; [Copy("crates/prosa/tests/fixtures/encoders/bert-seqcls", "m"), Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny/tokenizer.json", "m/tokenizer.json"), Json("m/config.json", "id2label", "{\"0\": \"a\", \"1\": \"b\", \"2\": \"c\", \"3\": \"d\", \"4\": \"e\", \"5\": \"f\", \"6\": \"g\"}")]; "pipeline text-classification --model m hello"; ["m"]);

    // ---- Model folders: weights and tokenizers ----
    weights_missing("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Remove("m/model.safetensors")]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors"]);
    weights_truncated("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Truncate("m/model.safetensors", 3000)]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors"]);
    weights_empty("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Write("m/model.safetensors", b"")]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors"]);
    safetensors_huge_header_length("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Make("m/model.safetensors", build::safetensors_huge_header)]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors"]);
    safetensors_header_not_json("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Make("m/model.safetensors", build::safetensors_header_not_json)]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors"]);
    safetensors_offsets_past_end("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Make("m/model.safetensors", build::safetensors_offsets_past_end)]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors"]);
    safetensors_shape_disagrees_with_bytes("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Make("m/model.safetensors", build::safetensors_shape_disagrees_with_bytes)]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors"]);
    safetensors_unknown_dtype("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Make("m/model.safetensors", build::safetensors_unknown_dtype)]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors"]);
    weights_of_another_model("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Copy("crates/prosa/tests/fixtures/decoders/gpt2/model.safetensors", "m/model.safetensors")]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors"]);
    weights_of_another_size("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Json("m/config.json", "intermediate_size", "48")]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors", "intermediate"]);
    tokenizer_missing("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/encoders/bert-mlm", "m")]; "pipeline fill-mask --model m [MASK]"; ["tokenizer"]);
    tokenizer_not_json("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/encoders/bert-mlm", "m"), Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny/tokenizer.json", "m/tokenizer.json"), Write("m/tokenizer.json", b"{\"model\": ")]; "pipeline fill-mask --model m [MASK]"; ["tokenizer.json"]);
    tokenizer_decoder_section_broken("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/encoders/bert-mlm", "m"), Copy("fuzz/findings/tokenizer/wordpiece.panic-decoder-syntax.json", "m/tokenizer.json")]; "pipeline fill-mask --model m [MASK]"; ["tokenizer.json"]);
    tokenizer_unknown_model("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/encoders/bert-mlm", "m"), Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny/tokenizer.json", "m/tokenizer.json"), Write("m/tokenizer.json", b"{\"version\": \"1.0\", \"model\": {\"type\": \"Telepathy\"}}")]; "pipeline fill-mask --model m [MASK]"; ["tokenizer.json"]);
    tokenizer_ids_past_the_vocabulary("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny", "m"), Json("m/config.json", "vocab_size", "8")]; "pipeline fill-mask --model m [MASK]"; ["model.safetensors"]);
    tokenizer_config_not_json("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json"), Write("m/tokenizer_config.json", b"{,}")]; "generate --model m --chat --prompt hello"; ["tokenizer_config.json"]);
    chat_template_syntax_error("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json"), Write("m/tokenizer_config.json", b"{\"chat_template\": \"{% for m in messages %}{{ m.content \"}")]; "generate --model m --chat --prompt hello"; ["chat"]);
    fill_mask_without_mask_token("Weights and tokenizers"; [Copy("crates/prosa/tests/fixtures/encoders/bert-mlm", "m"), Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny/tokenizer.json", "m/tokenizer.json")]; "pipeline fill-mask --model m no-mask-here"; ["[MASK]"]);

    // ---- GGUF files ----
    gguf_bad_magic("GGUF files"; [Make("m.gguf", build::gguf_bad_magic)]; "generate --model m.gguf --prompt a"; ["m.gguf"]);
    gguf_truncated("GGUF files"; [Make("m.gguf", build::gguf_truncated)]; "generate --model m.gguf --prompt a"; ["m.gguf"]);
    gguf_version_99("GGUF files"; [Make("m.gguf", build::gguf_version_99)]; "generate --model m.gguf --prompt a"; ["m.gguf"]);
    gguf_huge_tensor_count("GGUF files"; [Make("m.gguf", build::gguf_huge_tensor_count)]; "generate --model m.gguf --prompt a"; ["m.gguf"]);
    gguf_huge_metadata_count("GGUF files"; [Make("m.gguf", build::gguf_huge_metadata_count)]; "generate --model m.gguf --prompt a"; ["m.gguf"]);
    gguf_huge_string("GGUF files"; [Make("m.gguf", build::gguf_huge_string)]; "generate --model m.gguf --prompt a"; ["m.gguf"]);
    gguf_unknown_value_type("GGUF files"; [Make("m.gguf", build::gguf_unknown_value_type)]; "generate --model m.gguf --prompt a"; ["m.gguf"]);
    gguf_huge_array("GGUF files"; [Make("m.gguf", build::gguf_huge_array)]; "generate --model m.gguf --prompt a"; ["m.gguf"]);
    gguf_no_architecture("GGUF files"; [Make("m.gguf", build::gguf_no_architecture)]; "generate --model m.gguf --prompt a"; ["m.gguf", "general.architecture"]);
    gguf_unknown_architecture("GGUF files"; [Make("m.gguf", build::gguf_unknown_architecture)]; "generate --model m.gguf --prompt a"; ["m.gguf", "mamba"]);
    gguf_zero_heads("GGUF files"; [Make("m.gguf", build::gguf_zero_heads)]; "generate --model m.gguf --prompt a"; ["m.gguf", "head_count"]);
    gguf_heads_do_not_divide("GGUF files"; [Make("m.gguf", build::gguf_heads_do_not_divide)]; "generate --model m.gguf --prompt a"; ["m.gguf", "head_count"]);
    gguf_huge_block_count("GGUF files"; [Make("m.gguf", build::gguf_huge_block_count)]; "generate --model m.gguf --prompt a"; ["m.gguf", "block_count"]);
    gguf_tensor_past_end("GGUF files"; [Make("m.gguf", build::gguf_tensor_past_end)]; "generate --model m.gguf --prompt a"; ["m.gguf"]);
    gguf_huge_tensor("GGUF files"; [Make("m.gguf", build::gguf_huge_tensor)]; "generate --model m.gguf --prompt a"; ["m.gguf"]);
    gguf_empty_file("GGUF files"; [Write("m.gguf", b"")]; "perplexity --model m.gguf --file m.gguf"; ["m.gguf"]);

    // ---- TOML experiments ----
    toml_syntax_error("TOML experiments"; [Write("e.toml", b"[training]\nnum_train_epochs = \n")]; "train --config e.toml"; ["e.toml", "line 2"]);
    toml_unknown_key("TOML experiments"; [Write("e.toml", b"[training]\nnum_train_epoch = 3\n")]; "train --config e.toml"; ["e.toml", "num_train_epoch"]);
    toml_unknown_section("TOML experiments"; [Write("e.toml", b"[trainer]\nseed = 1\n")]; "train --config e.toml"; ["e.toml", "trainer"]);
    toml_wrong_type("TOML experiments"; [Write("e.toml", b"[training]\nnum_train_epochs = \"three\"\n")]; "train --config e.toml"; ["e.toml", "num_train_epochs"]);
    toml_dropout_past_one("TOML experiments"; [Write("e.toml", b"[model]\ndropout = 1.5\n")]; "train --config e.toml"; ["dropout"]);
    toml_negative_learning_rate("TOML experiments"; [Write("e.toml", b"[training]\nlearning_rate = -0.1\n")]; "train --config e.toml"; ["learning_rate"]);
    toml_unknown_architecture("TOML experiments"; [Write("e.toml", b"[model]\narch = \"perceptron\"\n")]; "train --config e.toml"; ["arch", "perceptron"]);
    toml_validation_split_of_one("TOML experiments"; [Write("e.toml", b"[data]\nvalidation_split = 1.0\n")]; "train --config e.toml"; ["validation_split"]);
    toml_missing_file("TOML experiments"; []; "train --config nowhere.toml"; ["nowhere.toml"]);
    toml_not_utf8("TOML experiments"; [Write("e.toml", b"[data]\ntext_column = \"t\xe9xt\"\n")]; "train --config e.toml"; ["e.toml"]);

    // ---- Command-line flags ----
    flag_batch_size_zero("Flags"; []; "train --batch-size 0"; ["batch"]);
    flag_epochs_zero("Flags"; []; "train --epochs 0"; ["epochs"]);
    flag_learning_rate_negative("Flags"; []; "train --lr=-1"; ["learning_rate"]);
    flag_learning_rate_nan("Flags"; []; "train --lr NaN"; ["learning_rate"]);
    flag_dropout_one("Flags"; []; "train --dropout 1.0"; ["dropout"]);
    flag_dropout_negative("Flags"; []; "train --dropout=-0.1"; ["dropout"]);
    flag_validation_split_past_one("Flags"; []; "train --validation-split 1.5"; ["validation"]);
    flag_test_size_zero("Flags"; []; "train --test-size 0"; ["test"]);
    flag_unknown_metric("Flags"; []; "train --metric charisma"; ["charisma"]);
    flag_gradient_accumulation_zero("Flags"; []; "train --grad-accum 0"; ["accumulation"]);
    flag_warmup_ratio_past_one("Flags"; []; "train --warmup-ratio 2"; ["warmup"]);
    flag_label_smoothing_one("Flags"; []; "train --label-smoothing 1"; ["label_smoothing"]);
    flag_width_not_divisible_by_heads("Flags"; []; "train --arch transformer --embedding-dim 30 --heads 4"; ["num_heads"]);
    flag_max_rows_zero("Flags"; []; "train --max-rows 0"; ["max_rows"]);
    flag_unknown_arch("Flags"; []; "train --arch perceptron"; ["perceptron"]);
    flag_not_a_number("Flags"; []; "train --epochs three"; ["--epochs", "three"]);
    flag_unknown("Flags"; []; "train --epochz 3"; ["--epochz"]);
    flag_resume_without_checkpoint("Flags"; []; "train --output-dir run --resume"; ["checkpoint-last", "no checkpoint"]);
    flag_pretrained_missing("Flags"; []; "train --arch bert --pretrained nowhere"; ["nowhere"]);
    flag_temperature_negative("Flags"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json")]; "generate --model m --prompt a --temperature=-1"; ["temperature"]);
    flag_top_p_past_one("Flags"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json")]; "generate --model m --prompt a --top-p 1.5"; ["top_p"]);
    flag_top_p_zero("Flags"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json")]; "generate --model m --prompt a --top-p 0"; ["top_p"]);
    flag_num_beams_zero("Flags"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json")]; "generate --model m --prompt a --num-beams 0"; ["num_beams"]);
    flag_more_sequences_than_beams("Flags"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json")]; "generate --model m --prompt a --num-beams 2 --num-return-sequences 3"; ["num_return_sequences"]);
    flag_repetition_penalty_zero("Flags"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json")]; "generate --model m --prompt a --repetition-penalty 0"; ["repetition_penalty"]);
    flag_min_above_max_new_tokens("Flags"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json")]; "generate --model m --prompt a --min-new-tokens 10 --max-new-tokens 5"; ["min_new_tokens"]);
    flag_perplexity_stride_zero("Flags"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json"), Write("t.txt", b"a hello text a hello text\n")]; "perplexity --model m --file t.txt --stride 0"; ["stride"]);
    flag_perplexity_max_length_zero("Flags"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json"), Write("t.txt", b"a hello text a hello text\n")]; "perplexity --model m --file t.txt --max-length 0"; ["max_length"]);
    flag_fill_mask_top_k_zero("Flags"; [Copy("crates/prosa/tests/fixtures/encoders/bert-mlm", "m"), Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny/tokenizer.json", "m/tokenizer.json")]; "pipeline fill-mask --model m --top-k 0 [MASK]"; ["--top-k"]);
    flag_unknown_pipeline("Flags"; []; "pipeline telepathy --model m hello"; ["telepathy"]);
    flag_unknown_aggregation("Flags"; [Copy("crates/prosa/tests/fixtures/encoders/bert-tokcls", "m"), Copy("crates/prosa/tests/fixtures/pipelines/bert-tiny/tokenizer.json", "m/tokenizer.json")]; "pipeline token-classification --model m --aggregation-strategy loudest hello"; ["loudest"]);
    flag_pretrain_noise_density_past_one("Flags"; [Write("c.txt", b"a b c\n")]; "pretrain --arch t5 --corpus c.txt --noise-density 1.5"; ["noise"]);
    flag_pretrain_mean_span_zero("Flags"; [Write("c.txt", b"a b c\n")]; "pretrain --arch t5 --corpus c.txt --mean-span-length 0"; ["span"]);
    flag_pretrain_drop_mult_negative("Flags"; [Write("c.txt", b"a b c\n")]; "pretrain --arch awd-lstm --corpus c.txt --drop-mult=-1"; ["drop"]);
    flag_translate_beams_zero("Flags"; [Copy("crates/prosa/tests/fixtures/seq2seq/marian-spm", "m")]; "translate --model m --num-beams 0 hello"; ["beams"]);
    flag_data_split_test_size_past_one("Flags"; [Write("d.csv", b"text,label\na,x\nb,y\n")]; "data split --data d.csv --test-size 1.5 --out s"; ["test"]);
    flag_compare_run_without_name("Flags"; []; "compare --run somewhere --out c.png"; ["--run"]);
    flag_serve_max_active_past_63("Flags"; [Copy("crates/prosa/tests/fixtures/decoders/gpt2", "m"), Copy("crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json", "m/tokenizer.json")]; "serve --model m --max-active 100"; ["max-active"]);
    flag_serve_port_out_of_range("Flags"; []; "serve --model m --port 99999"; ["--port", "99999"]);
    flag_device_without_cuda("Flags"; []; "--device cuda train --max-rows 100"; ["cuda"]);
    flag_device_unknown("Flags"; []; "--device tpu data stats"; ["tpu"]);
    flag_quickstart_zero_rows("Flags"; []; "quickstart --max-rows 0"; ["--max-rows"]);
}
