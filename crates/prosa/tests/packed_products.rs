//! Inference products through a projection's packed weight (`nn::dense_panels`): the
//! same values as the tracked product for every row count and both weight layouts, and a packed
//! copy that follows the weight when it is written in place or replaced.

use candle_core::{Device, Tensor, Var};
use prosa::nn::dense_panels;
use prosa::nn::projection::{Projection, Weight};

/// Held by the tests that write a variable in place or expect a packed copy to stay kept:
/// in-place writes are counted process-wide (`candle_core::variable_writes`), so one test's
/// write would make another's kept copy stale while it runs beside it.
static VARIABLE_WRITES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    VARIABLE_WRITES.lock().unwrap_or_else(|p| p.into_inner())
}

fn values(shape: &[usize], seed: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f64 * 0.731 + seed).sin() * 1.7) as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    let a = t.abs().unwrap().flatten_all().unwrap();
    a.max(0).unwrap().to_scalar().unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// The largest difference relative to the largest value (sums of 200 products reach ~300).
fn relative_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_diff(a, b) / max_abs(b)
}

/// The values' bit patterns, to compare two paths exactly.
fn bits(t: &Tensor) -> Vec<u32> {
    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v.into_iter().map(f32::to_bits).collect()
}

/// `x·Wᵀ + b` composed from candle's ops.
fn reference(x: &Tensor, w_out_in: &Tensor, b: Option<&Tensor>) -> Tensor {
    let y = x.broadcast_matmul(&w_out_in.t().unwrap()).unwrap();
    match b {
        Some(b) => y.broadcast_add(b).unwrap(),
        None => y,
    }
}

#[test]
fn inference_products_equal_the_composed_product() {
    let _serial = serial();
    // 70 and 130 outputs: a full group of 64 and a part-filled one.
    for outputs in [70, 130] {
        let w = values(&[outputs, 200], 0.7);
        let b = values(&[outputs], 0.5);
        let layouts = [
            ("nn.Linear", Weight::Dense(w.clone())),
            (
                "Conv1D",
                Weight::Conv1d(w.t().unwrap().contiguous().unwrap()),
            ),
        ];
        for (name, weight) in layouts {
            for bias in [Some(b.clone()), None] {
                if matches!(weight, Weight::Conv1d(_)) && bias.is_none() {
                    continue; // GPT-2's Conv1D always has a bias
                }
                let projection = Projection::new(weight.clone(), bias.clone());
                for rows in [1, 2, 3, 5, 7, 20, 64, 65, 97, 200] {
                    let x = values(&[1, rows, 200], rows as f64);
                    let y = {
                        let _inference = candle_core::no_grad();
                        projection.forward(&x).unwrap()
                    };
                    let expected = reference(&x, &w, bias.as_ref());
                    assert_eq!(y.dims(), expected.dims());
                    let d = relative_diff(&y, &expected);
                    assert!(d < 1e-6, "{name}, {outputs} outputs, {rows} rows: {d}");
                }
                assert_eq!(
                    projection.has_packed_weight(),
                    dense_panels::supported(),
                    "{name}: a packed weight after inference products"
                );
            }
        }
    }
}

#[test]
fn tracked_products_leave_the_weight_unpacked() {
    let w = Var::from_tensor(&values(&[70, 200], 0.7)).unwrap();
    let projection = Projection::new(Weight::Dense(w.as_tensor().clone()), None);
    let x = values(&[20, 200], 0.1);
    let y = projection.forward(&x).unwrap();
    assert!(relative_diff(&y, &reference(&x, w.as_tensor(), None)) < 1e-6);
    // The weight is a variable: its gradient is wanted, so the product went through `linear`.
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(w.as_tensor()).is_some());
    assert!(!projection.has_packed_weight());
}

#[test]
fn the_packed_weight_follows_writes_and_replacements() {
    let _serial = serial();
    let w = Var::from_tensor(&values(&[130, 200], 0.7)).unwrap();
    let b = values(&[130], 0.5);
    let mut projection = Projection::new(Weight::Dense(w.as_tensor().clone()), Some(b.clone()));
    let x = values(&[20, 200], 0.1);
    let infer = |p: &Projection| {
        let _inference = candle_core::no_grad();
        p.forward(&x).unwrap()
    };
    let before = infer(&projection);
    assert!(relative_diff(&before, &reference(&x, w.as_tensor(), Some(&b))) < 1e-6);

    // Written in place, as an optimizer step or a checkpoint load does.
    w.set(&values(&[130, 200], 2.9)).unwrap();
    let after = infer(&projection);
    assert!(max_diff(&before, &after) > 1.0, "the weight did change");
    assert!(relative_diff(&after, &reference(&x, w.as_tensor(), Some(&b))) < 1e-6);

    // Replaced by another tensor.
    let other = values(&[130, 200], 4.2);
    projection.weight = Weight::Dense(other.clone());
    let replaced = infer(&projection);
    assert!(relative_diff(&replaced, &reference(&x, &other, Some(&b))) < 1e-6);
}

#[test]
fn a_batch_against_a_large_weight_keeps_no_packed_copy() {
    let _serial = serial();
    // 1,030 × 1,024 values: past the 4 MiB a batch keeps packed (sums of 1,024 products: 1e-5).
    let w = values(&[1030, 1024], 0.3);
    let projection = Projection::new(Weight::Dense(w.clone()), None);
    let _inference = candle_core::no_grad();
    let batch = values(&[70, 1024], 0.9);
    let y = projection.forward(&batch).unwrap();
    let d = relative_diff(&y, &reference(&batch, &w, None));
    assert!(d < 1e-5, "{d}");
    assert!(
        !projection.has_packed_weight(),
        "a batch keeps no packed copy"
    );
    let few = values(&[3, 1024], 0.2);
    let y = projection.forward(&few).unwrap();
    assert!(relative_diff(&y, &reference(&few, &w, None)) < 1e-5);
    assert_eq!(projection.has_packed_weight(), dense_panels::supported());
    // Now kept, batches use it too.
    let y = projection.forward(&batch).unwrap();
    assert!(relative_diff(&y, &reference(&batch, &w, None)) < 1e-5);
    assert_eq!(projection.has_packed_weight(), dense_panels::supported());
}

/// A batch against a weight too large to keep packed reads the weight in its own layout, a span
/// of a group at a time (`nn::dense_rows`); it must give the very bits of the same batch through
/// the packed copy (kept once a few-row product made it). `nn.Linear` and `Conv1D` layouts, with
/// and without a bias, plain and with GELU; 1,100 inputs (spans of 512, 512 and 76), 1,030
/// outputs (a last group of six), 70 rows (split by rows as well as by groups among threads);
/// and a stack of two large weights, whose columns are each weight's own product.
#[test]
fn batches_reading_large_weights_in_place_give_the_bits_of_the_packed_copy() {
    use prosa::nn::activation::Activation;
    let _serial = serial();
    let _inference = candle_core::no_grad();
    let (outputs, inputs) = (1030, 1100);
    let batch = values(&[70, inputs], 0.9);
    let b = values(&[outputs], 0.4);
    let norm = prosa::nn::norm::Norm::Layer {
        weight: values(&[outputs], 0.2),
        bias: values(&[outputs], 0.9),
        eps: 1e-12,
    };
    let forms = [
        (
            "linear",
            Weight::Dense(values(&[outputs, inputs], 0.3)),
            Some(b.clone()),
        ),
        (
            "linear, no bias",
            Weight::Dense(values(&[outputs, inputs], 0.5)),
            None,
        ),
        (
            "conv1d",
            Weight::Conv1d(values(&[inputs, outputs], 0.7)),
            Some(b),
        ),
    ];
    for (form, weight, bias) in forms {
        let projection = Projection::new(weight, bias);
        let in_place = projection.forward(&batch).unwrap();
        let gelu_in_place = projection
            .forward_activated(&batch, Activation::Gelu)
            .unwrap();
        let residual = values(&[70, outputs], 0.8);
        let normed = projection
            .forward_residual_norm(&batch, &residual, &norm)
            .unwrap();
        assert!(
            !projection.has_packed_weight(),
            "{form}: no copy kept for a batch"
        );
        projection.forward(&values(&[3, inputs], 0.2)).unwrap();
        if !projection.has_packed_weight() {
            assert!(
                !dense_panels::supported(),
                "{form}: a few rows keep a packed copy"
            );
            return;
        }
        let packed = projection.forward(&batch).unwrap();
        let gelu_packed = projection
            .forward_activated(&batch, Activation::Gelu)
            .unwrap();
        assert_eq!(bits(&in_place), bits(&packed), "{form}");
        assert_eq!(bits(&gelu_in_place), bits(&gelu_packed), "{form}, GELU");
        // Rows normed after a product split among tasks: the norm of the packed product.
        let apart = norm.forward_residual(&residual, &packed).unwrap();
        assert_eq!(bits(&normed), bits(&apart), "{form}, residual and norm");
        let w = match &projection.weight {
            Weight::Dense(w) => w.clone(),
            Weight::Conv1d(w) => w.t().unwrap(),
            _ => unreachable!(),
        };
        let d = relative_diff(&packed, &reference(&batch, &w, projection.bias.as_ref()));
        assert!(d < 1e-5, "{form}: {d}");
    }
    let parts = [
        Projection::new(
            Weight::Dense(values(&[outputs, inputs], 1.1)),
            Some(values(&[outputs], 0.6)),
        ),
        Projection::new(Weight::Dense(values(&[outputs, inputs], 1.3)), None),
    ];
    let stack = dense_panels::PanelCache::default();
    let stacked = Projection::stacked_forward(&[&parts[0], &parts[1]], &batch, &stack).unwrap();
    let alone: Vec<Tensor> = parts.iter().map(|p| p.forward(&batch).unwrap()).collect();
    assert_eq!(
        bits(&stacked.unwrap()),
        bits(&Tensor::cat(&alone, 1).unwrap()),
        "stack"
    );
}

/// Products of 7–64 rows run span by span of a group's input positions with the sums carried
/// between spans (64 positions up to 32 rows, 512 beyond: a decode step of a batch, beams);
/// each row's outputs must be the very bits the same row gets inside a larger batch, which takes
/// whole groups per pass — the same products summed in the same order. Widths of 200 (a short
/// last span), 128 (whole spans) and 1,100 (two spans of 512 and a short one); 300 outputs, so
/// the product is split into tasks of several groups and each span's prefetch crosses into the
/// next group.
#[test]
fn span_by_span_products_give_the_bits_of_whole_group_passes() {
    let _serial = serial();
    let _inference = candle_core::no_grad();
    for inputs in [200, 128, 1100] {
        let w = values(&[300, inputs], 0.4);
        let b = values(&[300], 0.8);
        for bias in [Some(b), None] {
            let projection = Projection::new(Weight::Dense(w.clone()), bias.clone());
            let batch = values(&[97, inputs], 1.3);
            let whole = projection.forward(&batch).unwrap();
            for rows in [7, 12, 16, 25, 32, 33, 40, 64] {
                let few = batch.narrow(0, 0, rows).unwrap();
                let y = projection.forward(&few).unwrap();
                let expected = whole.narrow(0, 0, rows).unwrap();
                assert_eq!(
                    y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    expected.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    "{inputs} inputs, {rows} rows, bias {}",
                    bias.is_some()
                );
                let d = relative_diff(&y, &reference(&few, &w, bias.as_ref()));
                assert!(d < 1e-5, "{inputs} inputs, {rows} rows: {d}");
            }
        }
    }
}

/// Projections of the same input stacked by outputs (an attention's queries, keys and values)
/// give, side by side, the very bits each gives alone — every output is the same sum in the
/// same order — with biases, one without a bias, widths that do not fill a group (70 + 130 +
/// 50), every row count's path, and a packed stack that follows an in-place write of one of its
/// weights.
#[test]
fn stacked_projections_give_the_bits_of_each_alone() {
    let _serial = serial();
    let w = Var::from_tensor(&values(&[130, 200], 0.7)).unwrap();
    let parts = [
        Projection::new(
            Weight::Dense(values(&[70, 200], 0.3)),
            Some(values(&[70], 0.1)),
        ),
        Projection::new(Weight::Dense(w.as_tensor().clone()), None),
        Projection::new(
            Weight::Dense(values(&[50, 200], 0.9)),
            Some(values(&[50], 0.6)),
        ),
    ];
    let stack = dense_panels::PanelCache::default();
    let check = |rows: usize| {
        let _inference = candle_core::no_grad();
        let x = values(&[1, rows, 200], rows as f64);
        let stacked =
            Projection::stacked_forward(&[&parts[0], &parts[1], &parts[2]], &x, &stack).unwrap();
        let Some(stacked) = stacked else {
            assert!(
                !dense_panels::supported(),
                "no stacked product with the kernel"
            );
            return;
        };
        let alone: Vec<Tensor> = parts.iter().map(|p| p.forward(&x).unwrap()).collect();
        let expected = Tensor::cat(&alone, 2).unwrap();
        assert_eq!(stacked.dims(), [1, rows, 250]);
        assert_eq!(
            stacked.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            expected.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{rows} rows"
        );
    };
    for rows in [1, 5, 20, 64, 97] {
        check(rows);
    }
    w.set(&values(&[130, 200], 2.9)).unwrap();
    check(20);
    // A stack of a weight in another form does not apply.
    let conv = Projection::new(Weight::Conv1d(values(&[200, 70], 0.2)), None);
    let _inference = candle_core::no_grad();
    let x = values(&[3, 200], 0.4);
    let none = Projection::stacked_forward(&[&parts[0], &conv], &x, &stack).unwrap();
    assert!(none.is_none());
}

#[test]
fn activated_products_give_the_bits_of_the_activation_after_the_product() {
    use prosa::nn::activation::Activation;
    let _serial = serial();
    let w = values(&[130, 200], 0.7);
    let b = values(&[130], 0.5);
    let projection = Projection::new(Weight::Dense(w), Some(b));
    let _inference = candle_core::no_grad();
    for activation in [
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::Relu,
    ] {
        // One pass, spans, row blocks.
        for rows in [1, 5, 7, 20, 65, 200] {
            let x = values(&[1, rows, 200], rows as f64);
            let fused = projection.forward_activated(&x, activation).unwrap();
            let apart = activation.apply(&projection.forward(&x).unwrap()).unwrap();
            assert_eq!(fused.dims(), apart.dims());
            assert!(
                bits(&fused) == bits(&apart),
                "{activation:?}, {rows} rows: largest difference {}",
                max_diff(&fused, &apart)
            );
            // The activation was taken: negative sums are pulled toward (or to) zero.
            assert!(max_diff(&fused, &projection.forward(&x).unwrap()) > 0.1);
        }
    }
}

#[test]
fn residual_normed_products_give_the_bits_of_the_norm_after_the_product() {
    use prosa::nn::norm::Norm;
    let _serial = serial();
    let w = values(&[130, 200], 0.7);
    let b = values(&[130], 0.5);
    let projection = Projection::new(Weight::Dense(w), Some(b));
    let norm = Norm::Layer {
        weight: values(&[130], 0.2),
        bias: values(&[130], 0.9),
        eps: 1e-12,
    };
    let _inference = candle_core::no_grad();
    // On every thread (a product split among tasks: rows normed after it), and on one (one task:
    // each row block normed as it is finished).
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for single in [false, true] {
        // One pass, spans, one row block, several.
        for rows in [1, 7, 40, 65, 300] {
            let x = values(&[1, rows, 200], rows as f64);
            let residual = values(&[1, rows, 130], 0.3 + rows as f64);
            let run = || {
                let fused = projection
                    .forward_residual_norm(&x, &residual, &norm)
                    .unwrap();
                let apart = norm
                    .forward_residual(&residual, &projection.forward(&x).unwrap())
                    .unwrap();
                (fused, apart)
            };
            let (fused, apart) = if single {
                one_thread.install(run)
            } else {
                run()
            };
            assert_eq!(fused.dims(), [1, rows, 130]);
            assert!(
                bits(&fused) == bits(&apart),
                "{rows} rows, one thread {single}: largest difference {}",
                max_diff(&fused, &apart)
            );
            // The norm was taken: the sum of the product and the residual is not what came out.
            let sum = (projection.forward(&x).unwrap() + &residual).unwrap();
            assert!(max_diff(&fused, &sum) > 0.1);
        }
    }
}
