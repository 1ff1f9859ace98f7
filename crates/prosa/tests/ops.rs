//! prosa's own candle ops (linear, layer norm, softmax) against candle's composed versions:
//! equal values and equal gradients of every input.

use candle_core::{Device, Tensor, Var, D};
use prosa::nn::linear::linear;
use prosa::nn::norm::layer_norm;
use prosa::nn::softmax::softmax_last_dim;

fn var(shape: &[usize], seed: f64) -> Var {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i as f64 * 0.731 + seed).sin() * 1.7) as f32)
        .collect();
    Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Compares `ours` and `reference` (both functions of `inputs`) and their gradients under a
/// weighted sum, so every output position gets a different upstream gradient.
fn check(inputs: &[Var], ours: impl Fn() -> Tensor, reference: impl Fn() -> Tensor, what: &str) {
    let (a, b) = (ours(), reference());
    assert!(
        max_diff(&a, &b) < 1e-5,
        "{what}: values differ by {}",
        max_diff(&a, &b)
    );
    let weights = var(a.dims(), 0.3);
    let loss = |t: &Tensor| (t * weights.as_tensor()).unwrap().sum_all().unwrap();
    let (ga, gb) = (loss(&a).backward().unwrap(), loss(&b).backward().unwrap());
    for (i, v) in inputs.iter().enumerate() {
        let (x, y) = (
            ga.get(v.as_tensor()).unwrap(),
            gb.get(v.as_tensor()).unwrap(),
        );
        assert!(
            max_diff(x, y) < 1e-4,
            "{what}: gradient of input {i} differs by {}",
            max_diff(x, y)
        );
    }
}

#[test]
fn linear_equals_matmul_plus_bias() {
    let (x, w, b) = (var(&[2, 5, 7], 0.1), var(&[3, 7], 0.2), var(&[3], 0.4));
    check(
        &[x.clone(), w.clone(), b.clone()],
        || linear(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap(),
        || {
            x.as_tensor()
                .broadcast_matmul(&w.as_tensor().t().unwrap())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap()
        },
        "linear",
    );
}

#[test]
fn layer_norm_equals_the_composed_formula() {
    let (x, g, b) = (var(&[3, 4, 16], 0.5), var(&[16], 0.6), var(&[16], 0.7));
    check(
        &[x.clone(), g.clone(), b.clone()],
        || layer_norm(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5).unwrap(),
        || {
            candle_nn::ops::layer_norm_slow(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5)
                .unwrap()
        },
        "layer norm",
    );
}

#[test]
fn a_norm_of_a_residual_sum_gives_the_bits_of_the_norm_of_the_added_tensor() {
    use prosa::nn::norm::Norm;
    // 100 rows of 384: several of the norm's tasks (42 rows each).
    let (x, r) = (var(&[4, 25, 384], 0.5), var(&[4, 25, 384], 0.9));
    let (weight, bias) = (var(&[384], 0.6), var(&[384], 0.7));
    let norm = Norm::Layer {
        weight: weight.as_tensor().clone(),
        bias: bias.as_tensor().clone(),
        eps: 1e-12,
    };
    let bits = |t: &Tensor| {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.into_iter().map(f32::to_bits).collect::<Vec<_>>()
    };
    let apart = |x: &Tensor, r: &Tensor| norm.forward(&(x + r).unwrap()).unwrap();
    {
        let _inference = candle_core::no_grad();
        let (x, r) = (x.as_tensor(), r.as_tensor());
        let fused = norm.forward_residual(x, r).unwrap();
        assert!(
            bits(&fused) == bits(&apart(x, r)),
            "{}",
            max_diff(&fused, &apart(x, r))
        );
        // A view is read as its values.
        let xt = x.transpose(0, 1).unwrap();
        let rt = r.transpose(0, 1).unwrap();
        assert!(bits(&norm.forward_residual(&xt, &rt).unwrap()) == bits(&apart(&xt, &rt)));
    }
    // Tracked inputs take the composed ops, and their gradient.
    let (xt, rt) = (x.as_tensor(), r.as_tensor());
    let fused = norm.forward_residual(xt, rt).unwrap();
    assert!(bits(&fused) == bits(&apart(xt, rt)));
    let grads = fused.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(x.as_tensor()).is_some() && grads.get(r.as_tensor()).is_some());
}

#[test]
fn softmax_equals_candles() {
    let x = var(&[2, 3, 4, 9], 0.8);
    check(
        std::slice::from_ref(&x),
        || softmax_last_dim(x.as_tensor()).unwrap(),
        || candle_nn::ops::softmax(x.as_tensor(), D::Minus1).unwrap(),
        "softmax",
    );
}

#[test]
fn gelu_equals_candles_erf_gelu() {
    let x = var(&[4, 50], 0.9);
    check(
        std::slice::from_ref(&x),
        || prosa::nn::activation::gelu(x.as_tensor()).unwrap(),
        || x.as_tensor().gelu_erf().unwrap(),
        "gelu",
    );
}

#[test]
fn masked_softmax_equals_scale_bias_softmax() {
    let scores = var(&[2, 3, 4, 6], 1.1);
    let bias = Tensor::new(
        &[
            [[[0f32, 0.0, 0.0, 0.0, -1e9, -1e9]]],
            [[[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]],
        ],
        &Device::Cpu,
    )
    .unwrap();
    check(
        std::slice::from_ref(&scores),
        || prosa::nn::softmax::masked_softmax(scores.as_tensor(), &bias, 0.25).unwrap(),
        || {
            let x = (scores.as_tensor() * 0.25)
                .unwrap()
                .broadcast_add(&bias)
                .unwrap();
            candle_nn::ops::softmax(&x, D::Minus1).unwrap()
        },
        "masked softmax",
    );
}

#[test]
fn gelu_tanh_equals_candles_gelu() {
    let x = var(&[4, 50], 1.3);
    check(
        std::slice::from_ref(&x),
        || prosa::nn::activation::gelu_tanh(x.as_tensor()).unwrap(),
        || x.as_tensor().gelu().unwrap(),
        "gelu tanh",
    );
}

#[test]
fn silu_equals_candles_silu() {
    let x = var(&[4, 50], 2.1);
    check(
        std::slice::from_ref(&x),
        || prosa::nn::activation::silu(x.as_tensor()).unwrap(),
        || x.as_tensor().silu().unwrap(),
        "silu",
    );
}

#[test]
fn conv1d_linear_equals_matmul_plus_bias() {
    let (x, w, b) = (var(&[2, 5, 7], 0.1), var(&[7, 3], 0.2), var(&[3], 0.4));
    check(
        &[x.clone(), w.clone(), b.clone()],
        || prosa::nn::linear::conv1d_linear(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap(),
        || {
            x.as_tensor()
                .broadcast_matmul(w.as_tensor())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap()
        },
        "conv1d linear",
    );
}

#[test]
fn rms_norm_equals_candles_composed_version() {
    let (x, g) = (var(&[3, 4, 16], 0.5), var(&[16], 0.6));
    check(
        &[x.clone(), g.clone()],
        || prosa::nn::norm::rms_norm(x.as_tensor(), g.as_tensor(), 1e-6).unwrap(),
        || candle_nn::ops::rms_norm_slow(x.as_tensor(), g.as_tensor(), 1e-6).unwrap(),
        "rms norm",
    );
}

#[test]
fn rope_equals_candles_rotations_in_both_styles() {
    use prosa::nn::rope::{rope, rope_tables, RopeStyle};
    let x = var(&[2, 3, 5, 8], 0.7);
    let (cos, sin) = rope_tables(&[0, 1, 2, 3, 4], 8, 10_000.0, &Device::Cpu).unwrap();
    check(
        std::slice::from_ref(&x),
        || rope(x.as_tensor(), &cos, &sin, RopeStyle::Half).unwrap(),
        || candle_nn::rotary_emb::rope_slow(x.as_tensor(), &cos, &sin).unwrap(),
        "rope (halves)",
    );
    check(
        std::slice::from_ref(&x),
        || rope(x.as_tensor(), &cos, &sin, RopeStyle::Interleaved).unwrap(),
        || candle_nn::rotary_emb::rope_i_slow(x.as_tensor(), &cos, &sin).unwrap(),
        "rope (interleaved)",
    );
}

#[test]
fn causal_masked_softmax_equals_a_masked_softmax() {
    // 3 new queries over 5 keys (2 cached), the first key of batch entry 0 padding.
    let scores = var(&[2, 2, 3, 5], 1.7);
    let bias = Tensor::new(
        &[
            [[[-1e9f32, 0.0, 0.0, 0.0, 0.0]]],
            [[[0.0, 0.0, 0.0, 0.0, 0.0]]],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let causal: Vec<f32> = (0..3)
        .flat_map(|q| (0..5).map(move |k| if k <= q + 2 { 0.0 } else { -1e30 }))
        .collect();
    let causal = Tensor::from_vec(causal, (1, 1, 3, 5), &Device::Cpu).unwrap();
    check(
        std::slice::from_ref(&scores),
        || prosa::nn::softmax::causal_masked_softmax(scores.as_tensor(), &bias, 0.5).unwrap(),
        || {
            let x = (scores.as_tensor() * 0.5)
                .unwrap()
                .broadcast_add(&bias)
                .unwrap()
                .broadcast_add(&causal)
                .unwrap();
            candle_nn::ops::softmax(&x, D::Minus1).unwrap()
        },
        "causal masked softmax",
    );
}

#[test]
fn softmax_cross_entropy_equals_the_composed_loss() {
    let logits = var(&[5, 7], 2.1);
    let targets = [Some(3), None, Some(0), Some(6), None];
    check(
        std::slice::from_ref(&logits),
        || prosa::nn::loss::softmax_cross_entropy(logits.as_tensor(), &targets).unwrap(),
        || {
            let rows = Tensor::new(&[0u32, 2, 3], &Device::Cpu).unwrap();
            let picked = logits.as_tensor().index_select(&rows, 0).unwrap();
            prosa::nn::loss::cross_entropy(&picked, &[3, 0, 6], None).unwrap()
        },
        "softmax cross-entropy",
    );
}

#[test]
fn label_smoothed_cross_entropy_equals_the_composed_loss() {
    let logits = var(&[5, 7], 1.7);
    let targets = [Some(3), None, Some(0), Some(6), Some(2)];
    check(
        std::slice::from_ref(&logits),
        || prosa::nn::loss::smoothed_cross_entropy(logits.as_tensor(), &targets, 0.1).unwrap(),
        || {
            let rows = Tensor::new(&[0u32, 2, 3, 4], &Device::Cpu).unwrap();
            let picked = logits.as_tensor().index_select(&rows, 0).unwrap();
            let nll = prosa::nn::loss::cross_entropy(&picked, &[3, 0, 6, 2], None).unwrap();
            let log_p = candle_nn::ops::log_softmax(&picked, candle_core::D::Minus1).unwrap();
            let uniform = log_p.mean_all().unwrap().neg().unwrap();
            ((nll * 0.9).unwrap() + (uniform * 0.1).unwrap()).unwrap()
        },
        "label-smoothed cross-entropy",
    );
}

#[test]
fn linear_without_bias_equals_matmul() {
    let (x, w) = (var(&[2, 5, 7], 0.15), var(&[3, 7], 0.25));
    check(
        &[x.clone(), w.clone()],
        || prosa::nn::linear::linear_no_bias(x.as_tensor(), w.as_tensor()).unwrap(),
        || {
            x.as_tensor()
                .broadcast_matmul(&w.as_tensor().t().unwrap())
                .unwrap()
        },
        "linear without bias",
    );
}

/// `linear` and `conv1d_linear` of `x` against candle's matmul plus bias: 70 outputs, 200
/// inputs, values and gradients.
fn check_both_layouts(x_shape: &[usize], what: &str) {
    let (x, b) = (var(x_shape, 0.3), var(&[70], 0.5));
    let (w, wt) = (var(&[70, 200], 0.7), var(&[200, 70], 0.8));
    let reference = |w: &Tensor| {
        x.as_tensor()
            .broadcast_matmul(w)
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap()
    };
    check(
        &[x.clone(), w.clone(), b.clone()],
        || linear(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap(),
        || reference(&w.as_tensor().t().unwrap()),
        &format!("{what} linear"),
    );
    check(
        &[x.clone(), wt.clone(), b.clone()],
        || prosa::nn::linear::conv1d_linear(x.as_tensor(), wt.as_tensor(), b.as_tensor()).unwrap(),
        || reference(wt.as_tensor()),
        &format!("{what} conv1d linear"),
    );
}

/// A product of few rows (≤ 64) large enough for the thread pool: each thread multiplies a share
/// of the weight's rows (48 and 22 of 70 on two threads).
#[test]
fn few_row_products_shared_by_threads_equal_matmul_plus_bias() {
    check_both_layouts(&[4, 5, 200], "few-row");
}

#[test]
fn many_row_products_equal_matmul_plus_bias() {
    // 150 rows: past the few-row path, gemm with x on the left.
    check_both_layouts(&[3, 50, 200], "many-row");
}
