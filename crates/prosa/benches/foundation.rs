//! Throughput of the foundation on the embedded tweets: reading, bag-of-words features, one
//! Trainer epoch of the logistic-regression baseline, and prediction.
//!
//!     cargo bench -p prosa --bench foundation
//!
//! Prints one line per stage with rows per second. Not a test: nothing here fails on speed.

use std::time::Instant;

use prosa::data::embedded_tweets;
use prosa::models::bow::BowClassifier;
use prosa::models::TextClassifier;
use prosa::text::{Vectorizer, VectorizerConfig};
use prosa::train::{Trainer, TrainingArgs};

fn report(stage: &str, rows: usize, seconds: f64) {
    println!(
        "{stage:<36} {rows:>7} rows  {seconds:>8.3} s  {:>10.0} rows/s",
        rows as f64 / seconds
    );
}

fn main() -> prosa::Result<()> {
    let t = Instant::now();
    let data = embedded_tweets()?;
    report(
        "read embedded CSV (latin-1)",
        data.len(),
        t.elapsed().as_secs_f64(),
    );

    let texts = data.texts();
    let labels = data.label_map()?;
    let ids = data.label_ids(&labels)?;
    let config = VectorizerConfig {
        min_df: 2,
        max_features: Some(50_000),
        sublinear_tf: true,
        ..Default::default()
    };
    let t = Instant::now();
    let vectorizer = Vectorizer::fit(config, &texts)?;
    report(
        "tf-idf fit (1-2 grams)",
        texts.len(),
        t.elapsed().as_secs_f64(),
    );

    let model = BowClassifier::new(
        vectorizer,
        labels.clone(),
        0,
        0.0,
        None,
        42,
        &prosa::device::default_device(),
    )?;
    let t = Instant::now();
    let examples = model.prepare(&texts, &ids);
    report("tf-idf transform", texts.len(), t.elapsed().as_secs_f64());

    let dir = std::env::temp_dir().join("prosa-bench-foundation");
    let args = TrainingArgs {
        output_dir: dir.clone(),
        num_train_epochs: 1,
        per_device_train_batch_size: 64,
        learning_rate: 5e-3,
        progress: false,
        save_best: false,
        save_last: false,
        ..Default::default()
    };
    let t = Instant::now();
    Trainer::new(args, labels.names().to_vec())?.train(&model, &examples, None, false)?;
    report(
        "train 1 epoch (logistic regression)",
        examples.len(),
        t.elapsed().as_secs_f64(),
    );

    let t = Instant::now();
    model.predict_proba(&texts)?;
    report(
        "predict (vectorize + forward)",
        texts.len(),
        t.elapsed().as_secs_f64(),
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
