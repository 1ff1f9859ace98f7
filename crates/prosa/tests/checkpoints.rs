//! The one checkpoint policy of every family: shards stay inside the model folder, tensors the
//! model does not have are ignored (and reported), sizes in a config are checked before
//! anything is allocated, and a decoder's save is atomic.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use prosa::models::decoder::{DecoderConfig, DecoderModel};
use prosa::models::encoder::{EncoderModel, Task};
use prosa::nn::ParamStore;

fn encoder_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encoders")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_shard_index_pointing_outside_the_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    copy_dir(&encoder_fixture("bert-base"), &dir);
    // The weights moved next to the folder, and an index that reaches them with `..`.
    std::fs::rename(
        dir.join("model.safetensors"),
        tmp.path().join("outside.safetensors"),
    )
    .unwrap();
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        r#"{"metadata": {}, "weight_map": {"embeddings.word_embeddings.weight": "../outside.safetensors"}}"#,
    )
    .unwrap();
    let err = EncoderModel::from_pretrained(&dir, None, None, &Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("outside the model folder") && err.contains("model.safetensors.index.json"),
        "{err}"
    );
    // An absolute path is refused the same way.
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        r#"{"weight_map": {"x": "/etc/hostname"}}"#,
    )
    .unwrap();
    let err = EncoderModel::from_pretrained(&dir, None, None, &Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("outside the model folder"), "{err}");
}

#[test]
fn a_tensor_the_model_does_not_have_is_reported_and_the_rest_loads() {
    let store = ParamStore::new(Device::Cpu);
    let w = Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
    store
        .insert("layer.weight", &w.zeros_like().unwrap())
        .unwrap();
    let mut tensors = std::collections::HashMap::new();
    tensors.insert("layer.weight".to_string(), w.clone());
    tensors.insert(
        "layer.extra".to_string(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let report = store
        .assign(&tensors, Path::new("model.safetensors"))
        .unwrap();
    assert_eq!(report.unexpected, ["layer.extra"]);
    assert!(report.newly_initialized.is_empty());
    let loaded = store.get("layer.weight").unwrap();
    assert_eq!(loaded.as_tensor().to_vec1::<f32>().unwrap(), [1.0, 2.0]);

    // A whole encoder folder with an extra tensor loads, with equal outputs.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("extra");
    copy_dir(&encoder_fixture("bert-base"), &dir);
    let file = dir.join("model.safetensors");
    let mut all = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    all.insert(
        "an.unexpected.tensor".into(),
        Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&all, &file).unwrap();
    let model = EncoderModel::from_pretrained(&dir, Some(Task::Base), None, &Device::Cpu);
    assert!(model.is_ok(), "{:?}", model.err());
}

#[test]
fn absurd_config_sizes_are_errors_naming_the_field_before_any_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("huge");
    copy_dir(&encoder_fixture("bert-base"), &dir);
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value["hidden_size"] = serde_json::json!(1u64 << 40);
    std::fs::write(dir.join("config.json"), value.to_string()).unwrap();
    let err = EncoderModel::from_pretrained(&dir, None, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("hidden_size") && err.contains("config.json"),
        "{err}"
    );
    value["hidden_size"] = serde_json::json!(32);
    value["num_attention_heads"] = serde_json::json!(0);
    std::fs::write(dir.join("config.json"), value.to_string()).unwrap();
    let err = EncoderModel::from_pretrained(&dir, None, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("num_attention_heads = 0"), "{err}");
    // A decoder built from settings: heads that do not divide the width.
    let err = DecoderModel::new(DecoderConfig::gpt2(100, 30, 1, 4, 16), &Device::Cpu, 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("n_embd 30 is not a multiple of n_head 4"),
        "{err}"
    );
}

#[test]
fn a_failed_decoder_save_leaves_the_previous_folder_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gpt");
    let model = DecoderModel::new(DecoderConfig::gpt2(64, 16, 1, 2, 16), &Device::Cpu, 0).unwrap();
    model.save_pretrained(&dir).unwrap();
    let before = std::fs::read(dir.join("model.safetensors")).unwrap();
    // The save writes a temporary sibling first; make that path unusable so the save fails.
    let blocker = prosa::fsio::temporary_sibling(&dir);
    std::fs::write(&blocker, b"a file where the temporary folder would go").unwrap();
    let other = DecoderModel::new(DecoderConfig::gpt2(64, 16, 1, 2, 16), &Device::Cpu, 1).unwrap();
    assert!(other.save_pretrained(&dir).is_err());
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        before
    );
    assert!(dir.join("config.json").exists() && dir.join("generation_config.json").exists());
}
