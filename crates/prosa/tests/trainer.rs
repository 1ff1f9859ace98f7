//! The Trainer's contract: exact resumption, gradient accumulation, frozen groups, early
//! stopping, checkpoints and the NaN guard — on a small softmax regression with real data.

use candle_core::{Device, Tensor, D};
use prosa::train::{
    ForwardCtx, Init, OptimizerKind, ParamGroup, ParamStore, StepOutput, Trainable, Trainer,
    TrainingArgs, CHECKPOINT_BEST, CHECKPOINT_LAST,
};

/// Three Gaussian blobs in 4-D: a learnable 3-class problem.
fn blobs(n: usize, seed: u64) -> Vec<(Vec<f32>, u32)> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    (0..n)
        .map(|i| {
            let c = (i % 3) as u32;
            let x = (0..4)
                .map(|d| next() + if d == c as usize { 1.5 } else { 0.0 })
                .collect();
            (x, c)
        })
        .collect()
}

struct Softmax {
    params: ParamStore,
    hidden: (Tensor, Tensor),
    out: (Tensor, Tensor),
    /// Multiplies the loss from this step on (to provoke a non-finite loss).
    blow_up: bool,
}

impl Softmax {
    fn new(seed: u64) -> Self {
        let params = ParamStore::new(Device::Cpu);
        let vb = params.builder(seed);
        let h = vb.pp("encoder");
        let c = vb.pp("classifier");
        Self {
            hidden: (
                h.param("weight", &[8, 4], Init::LinearDefault).unwrap(),
                h.param("bias", &[8], Init::Zeros).unwrap(),
            ),
            out: (
                c.param("weight", &[3, 8], Init::LinearDefault).unwrap(),
                c.param("bias", &[3], Init::Zeros).unwrap(),
            ),
            params,
            blow_up: false,
        }
    }

    fn values(&self) -> Vec<f32> {
        self.params
            .vars()
            .iter()
            .flat_map(|(_, v)| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect()
    }
}

impl Trainable for Softmax {
    type Example = (Vec<f32>, u32);

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn forward_batch(
        &self,
        batch: &[&Self::Example],
        ctx: &mut ForwardCtx,
    ) -> prosa::Result<StepOutput> {
        let xs: Vec<f32> = batch.iter().flat_map(|e| e.0.clone()).collect();
        let x = Tensor::from_vec(xs, (batch.len(), 4), &Device::Cpu)?;
        let h = x
            .matmul(&self.hidden.0.t()?)?
            .broadcast_add(&self.hidden.1)?
            .tanh()?;
        let h = prosa::nn::dropout(&h, 0.1, ctx)?;
        let logits = h.matmul(&self.out.0.t()?)?.broadcast_add(&self.out.1)?;
        let targets: Vec<u32> = batch.iter().map(|e| e.1).collect();
        let mut loss = prosa::nn::loss::cross_entropy(&logits, &targets, None)?;
        if self.blow_up {
            loss = (loss * f64::INFINITY)?;
        }
        let predictions = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        Ok(StepOutput {
            loss,
            predictions: Some(predictions),
            targets: Some(targets),
        })
    }
}

fn args(dir: &std::path::Path) -> TrainingArgs {
    TrainingArgs {
        output_dir: dir.to_path_buf(),
        num_train_epochs: 4,
        per_device_train_batch_size: 16,
        learning_rate: 0.05,
        logging_steps: 0,
        progress: false,
        metric_for_best_model: "accuracy".into(),
        ..Default::default()
    }
}

fn names() -> Vec<String> {
    ["a", "b", "c"].map(String::from).to_vec()
}

#[test]
fn learns_the_blobs_and_writes_history_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (train, eval) = (blobs(300, 1), blobs(90, 2));
    let model = Softmax::new(7);
    let a = TrainingArgs {
        logging_steps: 5,
        ..args(dir.path())
    };
    let out = Trainer::new(a, names())
        .unwrap()
        .train(&model, &train, Some(&eval), false)
        .unwrap();
    let history = &out.state.history.entries;
    assert_eq!(history.len(), 4);
    assert!(history[3].train_loss < history[0].train_loss);
    assert!(
        history[3].metrics["eval_accuracy"] > 0.9,
        "{:?}",
        history[3].metrics
    );
    for file in ["history.json", "history.csv", "training_args.json"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    for ckpt in [CHECKPOINT_LAST, CHECKPOINT_BEST] {
        for file in [
            "model.safetensors",
            "optimizer.safetensors",
            "trainer_state.json",
        ] {
            assert!(dir.path().join(ckpt).join(file).exists(), "{ckpt}/{file}");
        }
    }
    let log = std::fs::read_to_string(dir.path().join("train_log.jsonl")).unwrap();
    assert_eq!(
        log.lines().count(),
        76 / 5,
        "a line every 5 of the 76 steps"
    );
    let csv = std::fs::read_to_string(dir.path().join("history.csv")).unwrap();
    assert!(
        csv.starts_with("epoch,step,train_loss,learning_rate,wall_time_s,eval_accuracy"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 5);
}

#[test]
fn a_resumed_run_ends_exactly_where_an_uninterrupted_one_does() {
    let (train, eval) = (blobs(200, 3), blobs(60, 4));
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = Softmax::new(11);
    let mut a = args(straight_dir.path());
    a.load_best_model_at_end = false;
    Trainer::new(a.clone(), names())
        .unwrap()
        .train(&straight, &train, Some(&eval), false)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    a.output_dir = dir.path().to_path_buf();
    let crashed = Softmax::new(11);
    let mut trainer = Trainer::new(a.clone(), names()).unwrap();
    // 13 steps per epoch: die in the middle of epoch 3, after the epoch-2 checkpoint.
    trainer.interrupt_after_step(32);
    assert!(trainer.train(&crashed, &train, Some(&eval), false).is_err());

    let resumed = Softmax::new(999); // different init: everything must come from the checkpoint
    let out = Trainer::new(a, names())
        .unwrap()
        .train(&resumed, &train, Some(&eval), true)
        .unwrap();
    assert_eq!(out.state.global_step, 52);
    assert_eq!(out.state.history.entries.len(), 4);
    let (x, y) = (straight.values(), resumed.values());
    let max_diff = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max_diff < 1e-6, "resumed weights differ by {max_diff}");
}

#[test]
fn gradient_accumulation_equals_a_larger_batch() {
    let train = blobs(64, 5);
    let run = |batch: usize, accum: usize| {
        let dir = tempfile::tempdir().unwrap();
        let model = Softmax::new(3);
        let mut a = args(dir.path());
        a.per_device_train_batch_size = batch;
        a.gradient_accumulation_steps = accum;
        a.num_train_epochs = 1;
        a.optimizer.kind = OptimizerKind::Sgd;
        a.optimizer.momentum = 0.0;
        a.max_grad_norm = 0.0;
        // Dropout masks differ between the two layouts, so compare without dropout.
        let out = Trainer::new(a, names()).unwrap();
        let eval_only = Wrapped::new(model, false);
        out.train(&eval_only, &train, None, false).unwrap();
        eval_only.model.values()
    };
    let (big, accumulated) = (run(32, 1), run(16, 2));
    let max_diff = big
        .iter()
        .zip(&accumulated)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max_diff < 1e-5, "accumulated update differs by {max_diff}");
}

#[test]
fn frozen_groups_do_not_move() {
    let dir = tempfile::tempdir().unwrap();
    let model = Softmax::new(5);
    let before = model.params.tensors();
    let mut a = args(dir.path());
    a.num_train_epochs = 1;
    a.param_groups = vec![ParamGroup {
        pattern: "encoder.*".into(),
        frozen: true,
        ..Default::default()
    }];
    Trainer::new(a, names())
        .unwrap()
        .train(&model, &blobs(64, 6), None, false)
        .unwrap();
    let after = model.params.tensors();
    let diff = |name: &str| {
        (&before[name] - &after[name])
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(diff("encoder.weight"), 0.0);
    assert!(diff("classifier.weight") > 0.0);
}

#[test]
fn early_stopping_ends_the_run_and_restores_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let model = Softmax::new(5);
    let mut a = args(dir.path());
    a.num_train_epochs = 50;
    a.metric_for_best_model = "loss".into();
    a.early_stopping_patience = Some(1);
    a.learning_rate = 0.5; // large steps make the validation loss bounce soon
    let out = Trainer::new(a, names())
        .unwrap()
        .train(&model, &blobs(90, 7), Some(&blobs(30, 8)), false)
        .unwrap();
    assert!(out.stopped_early);
    assert!(out.state.history.entries.len() < 50);
    let best = out.state.best_metric.unwrap();
    let trainer = Trainer::new(args(dir.path()), names()).unwrap();
    let now = trainer.evaluate(&model, &blobs(30, 8)).unwrap()["eval_loss"];
    assert!(
        (now - best).abs() < 1e-5,
        "restored weights give {now}, best was {best}"
    );
}

#[test]
fn a_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Softmax::new(5);
    let a = args(dir.path());
    let mut first = Trainer::new(a.clone(), names()).unwrap();
    first.interrupt_after_step(6); // 4 steps per epoch: the epoch-1 checkpoint exists
    assert!(first
        .train(&model, &blobs(64, 9), Some(&blobs(30, 10)), false)
        .is_err());
    let trainer = Trainer::new(a, names()).unwrap();
    let saved = std::fs::read(dir.path().join(CHECKPOINT_LAST).join("model.safetensors")).unwrap();
    model.blow_up = true;
    let err = trainer
        .train(&model, &blobs(64, 9), Some(&blobs(30, 10)), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("loss became inf"), "{err}");
    assert!(err.contains("last good checkpoint is kept in"), "{err}");
    let after = std::fs::read(dir.path().join(CHECKPOINT_LAST).join("model.safetensors")).unwrap();
    assert_eq!(saved, after);
}

#[test]
fn bad_settings_are_named() {
    let a = TrainingArgs {
        per_device_train_batch_size: 0,
        ..Default::default()
    };
    let err = Trainer::new(a, vec![]).err().unwrap().to_string();
    assert_eq!(
        err,
        "setting 'per_device_train_batch_size': must be at least 1"
    );
}

/// Wraps the model: records the size of every training batch and, with `dropout` false, runs
/// its forward without dropout.
struct Wrapped {
    model: Softmax,
    dropout: bool,
    batch_sizes: std::sync::Mutex<Vec<usize>>,
}

impl Wrapped {
    fn new(model: Softmax, dropout: bool) -> Self {
        Self {
            model,
            dropout,
            batch_sizes: Default::default(),
        }
    }
}

impl Trainable for Wrapped {
    type Example = (Vec<f32>, u32);
    fn params(&self) -> &ParamStore {
        self.model.params()
    }
    fn forward_batch(
        &self,
        batch: &[&Self::Example],
        ctx: &mut ForwardCtx,
    ) -> prosa::Result<StepOutput> {
        if ctx.train {
            self.batch_sizes.lock().unwrap().push(batch.len());
        }
        if self.dropout {
            self.model.forward_batch(batch, ctx)
        } else {
            self.model.forward_batch(batch, &mut ForwardCtx::eval())
        }
    }
}

#[test]
fn drop_last_leaves_out_the_incomplete_batch() {
    // 33 examples in batches of 8: four full batches and one of a single row.
    let train = blobs(33, 6);
    let sizes = |drop_last: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.per_device_train_batch_size = 8;
        a.num_train_epochs = 2;
        a.dataloader_drop_last = drop_last;
        let model = Wrapped::new(Softmax::new(7), true);
        let outcome = Trainer::new(a, names())
            .unwrap()
            .train(&model, &train, Some(&train), false)
            .unwrap();
        let sizes = model.batch_sizes.into_inner().unwrap();
        (sizes, outcome.state.global_step)
    };
    assert_eq!(sizes(true), (vec![8; 8], 8));
    let (kept, steps) = sizes(false);
    assert_eq!((kept.iter().sum::<usize>(), steps), (66, 10));
}
