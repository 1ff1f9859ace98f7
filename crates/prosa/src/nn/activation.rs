//! Activation functions: branch-free rational approximations of tanh, the logistic sigmoid and
//! erf (each within 1e-6 of libm, so loops over them vectorise), and the erf and tanh GELUs as
//! candle ops with a backward pass.

use candle_core::{CpuStorage, CustomOp1, DType, InplaceOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{cpu_f32 as f32_slice, with_f32};
use super::lanes::vectorized;
use super::{spin_pool, uninit};
use crate::error::Result;

/// tanh as a rational function (odd degree-13 numerator, even degree-6 denominator, the
/// approximation Eigen uses), clamped where tanh is ±1 in f32. Branch-free, so the gate loops
/// vectorise; within 1e-6 of `f32::tanh` (tested below).
#[inline(always)]
#[allow(clippy::excessive_precision)] // the published coefficients, rounded by the compiler
pub(crate) fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * -2.760_768_5e-16 + 2.000_187_9e-13;
    let p = p * x2 - 8.604_671_5e-11;
    let p = p * x2 + 5.122_297e-8;
    let p = p * x2 + 1.485_722_4e-5;
    let p = p * x2 + 6.372_619_3e-4;
    let p = p * x2 + 4.893_524_6e-3;
    let q = x2 * 1.198_258_4e-6 + 1.185_347e-4;
    let q = q * x2 + 2.268_434_6e-3;
    let q = q * x2 + 4.893_525_2e-3;
    x * p / q
}

/// The logistic function through [`tanh`]: σ(x) = (1 + tanh(x/2)) / 2.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    0.5 + 0.5 * tanh(0.5 * x)
}

/// erf as a rational function of x (odd degree-13 numerator over an even degree-8
/// denominator, the approximation Eigen and XLA use), clamped where erf is ±1 in f32.
/// Branch-free, so loops over it vectorise; within 1e-6 of libm (tested below).
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = x2 * -2.726_142_258_013_06e-10 + 2.770_681_424_959_02e-08;
    let p = p * x2 - 2.101_024_020_825_08e-06;
    let p = p * x2 - 5.692_506_394_623_46e-05;
    let p = p * x2 - 7.349_906_303_268_55e-04;
    let p = p * x2 - 2.954_599_808_540_25e-03;
    let p = p * x2 - 1.609_603_332_624_15e-02;
    let q = x2 * -1.456_607_184_649_96e-05 - 2.133_740_552_789_05e-04;
    let q = q * x2 - 1.682_826_974_382_03e-03;
    let q = q * x2 - 7.373_329_167_204_68e-03;
    let q = q * x2 - 1.426_473_905_141_89e-02;
    x * p / q
}

/// `eˣ` within 2 ulp for x in [−87, 88] (smaller x give ≈1e-38 instead of 0, larger ones
/// overflow as `exp` does not: callers pass x ≤ 0): Cody–Waite reduction to
/// `2ᵏ·eʳ`, |r| ≤ ln2/2, and Cephes' degree-6 polynomial, in branch-free arithmetic.
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    let (e, rounded) = exp_reduced(x);
    // `rounded` and ROUND share their exponent (ulp 1), so their bits differ by k: the integer
    // read without a float-to-int conversion, which LLVM would do one lane at a time.
    let k_int = rounded.to_bits().wrapping_sub(ROUND.to_bits());
    e * f32::from_bits(k_int.wrapping_add(127) << 23)
}

/// [`exp_fast`] on sixteen lanes, the same steps in the same order (so the same values).
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp_fast_lanes(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let splat = _mm512_set1_ps;
    let x = _mm512_min_ps(_mm512_max_ps(x, splat(-87.0)), splat(88.0));
    let rounded = _mm512_add_ps(
        _mm512_mul_ps(x, splat(std::f32::consts::LOG2_E)),
        splat(ROUND),
    );
    let k = _mm512_sub_ps(rounded, splat(ROUND));
    let r = _mm512_sub_ps(
        _mm512_sub_ps(x, _mm512_mul_ps(k, splat(LN2_HI))),
        _mm512_mul_ps(k, splat(LN2_LO)),
    );
    let mut p = splat(EXP_FIRST);
    for c in EXP_NEXT {
        p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c));
    }
    let e = _mm512_add_ps(
        _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r),
        splat(1.0),
    );
    let k_int = _mm512_sub_epi32(
        _mm512_castps_si512(rounded),
        _mm512_set1_epi32(ROUND.to_bits() as i32),
    );
    let two_k = _mm512_slli_epi32::<23>(_mm512_add_epi32(k_int, _mm512_set1_epi32(127)));
    _mm512_mul_ps(e, _mm512_castsi512_ps(two_k))
}

/// Adding and removing 1.5·2²³ rounds to the nearest integer.
const ROUND: f32 = 12_582_912.0;

/// ln 2 in two parts (Cody–Waite): `k·LN2_HI` is exact for the `k` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// Cephes' polynomial for `eʳ`: `p = EXP_FIRST`, then `p = p·r + c` for each `c`, then
/// `eʳ ≈ p·r² + r + 1`.
const EXP_FIRST: f32 = 1.987_569_1e-4;
const EXP_NEXT: [f32; 5] = [
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// [`exp_fast`] but for the factor 2ᵏ: `eʳ` and `k + ROUND` (k = x·log₂e rounded).
#[inline(always)]
fn exp_reduced(x: f32) -> (f32, f32) {
    let x = x.clamp(-87.0, 88.0);
    let rounded = x * std::f32::consts::LOG2_E + ROUND;
    let k = rounded - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = EXP_NEXT.iter().fold(EXP_FIRST, |p, &c| p * r + c);
    (p * r * r + r + 1.0, rounded)
}

/// √(2/π), of the tanh GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// A point-wise activation: its value and its derivative at `x`.
trait Pointwise: Send + Sync + 'static {
    const NAME: &'static str;
    fn value(x: f32) -> f32;
    fn slope(x: f32) -> f32;
}

/// The tanh approximation of GELU.
struct GeluTanh;

impl Pointwise for GeluTanh {
    const NAME: &'static str = "prosa-gelu-tanh";
    #[inline(always)]
    fn value(v: f32) -> f32 {
        let u = SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v);
        0.5 * v * (1.0 + tanh(u))
    }
    /// d/dx ½x(1 + t) = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²), t = tanh(u).
    #[inline(always)]
    fn slope(v: f32) -> f32 {
        let t = tanh(SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v));
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * v * v);
        0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du
    }
}

/// Exact (erf) GELU.
struct Gelu;

impl Pointwise for Gelu {
    const NAME: &'static str = "prosa-gelu";
    #[inline(always)]
    fn value(v: f32) -> f32 {
        0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2))
    }
    /// d/dx [x Φ(x)] = Φ(x) + x φ(x).
    #[inline(always)]
    fn slope(v: f32) -> f32 {
        let inv_sqrt_2pi = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * FRAC_1_SQRT_2;
        let cdf = 0.5 * (1.0 + erf(v * FRAC_1_SQRT_2));
        // The branch-free exp (within 2 ulp; libm's call kept the loop scalar): below −87 it
        // gives ≈1e-38 for 0, where the term is x·1e-38 beside Φ(x) = 0 or 1.
        let pdf = inv_sqrt_2pi * exp_fast(-0.5 * v * v);
        cdf + v * pdf
    }
}

/// SiLU (swish).
struct Silu;

impl Pointwise for Silu {
    const NAME: &'static str = "prosa-silu";
    #[inline(always)]
    fn value(v: f32) -> f32 {
        v * sigmoid(v)
    }
    /// d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))).
    #[inline(always)]
    fn slope(v: f32) -> f32 {
        let s = sigmoid(v);
        s * (1.0 + v * (1.0 - s))
    }
}

/// A [`Pointwise`] activation as a candle op: chunks in parallel, each chunk's loop compiled
/// for AVX-512 where present; the backward pass multiplies the upstream gradient by the slope.
struct PointwiseOp<P>(std::marker::PhantomData<P>);

impl<P: Pointwise> CustomOp1 for PointwiseOp<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "activation input")?;
        let mut out = uninit::buffer(x.len());
        const STEP: usize = 1 << 14;
        spin_pool::for_each_chunk_mut(&mut out, STEP, |i, o| {
            let x = &x[i * STEP..i * STEP + o.len()];
            vectorized(
                #[inline(always)]
                || {
                    for (o, &v) in o.iter_mut().zip(x) {
                        o.write(P::value(v));
                    }
                },
            )
        });
        // SAFETY: each chunk's loop wrote every value of its chunk, and the chunks cover `out`.
        let out = unsafe { uninit::assume_written(out) };
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let mut dx = grad.flatten_all()?.to_vec1::<f32>()?;
        with_f32(x, |xs| {
            dx.par_chunks_mut(1 << 14)
                .zip(xs.par_chunks(1 << 14))
                .for_each(|(g, x)| {
                    vectorized(
                        #[inline(always)]
                        || {
                            for (g, &v) in g.iter_mut().zip(x) {
                                *g *= P::slope(v);
                            }
                        },
                    )
                })
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// `P` fused with its backward pass on the CPU in f32, `other` elsewhere.
fn pointwise<P: Pointwise>(
    x: &Tensor,
    other: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let op = PointwiseOp::<P>(std::marker::PhantomData);
        return Ok(x.contiguous()?.apply_op1(op)?);
    }
    Ok(other(x)?)
}

/// [`PointwiseOp`] over its own input: the same values, written where the input was.
impl<P: Pointwise> InplaceOp1 for PointwiseOp<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let (CpuStorage::F32(values), Some((start, end))) = (s, l.contiguous_offsets()) else {
            candle_core::bail!("{}: in place needs contiguous f32 values", P::NAME)
        };
        const STEP: usize = 1 << 14;
        spin_pool::for_each_chunk_mut(&mut values[start..end], STEP, |_, chunk| {
            vectorized(
                #[inline(always)]
                || chunk.iter_mut().for_each(|v| *v = P::value(*v)),
            )
        });
        Ok(())
    }
}

/// `P` over `x`, written over `x`'s own values where nothing records a gradient and `x` is
/// contiguous f32 on the CPU (the caller owns `x`: a projection's fresh output); `P`'s op
/// otherwise. Saves a buffer the size of `x` and the pass writing it.
fn pointwise_owned<P: Pointwise>(
    x: Tensor,
    other: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Tensor> {
    let plain = x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous();
    if plain && !x.track_op() {
        x.inplace_op1(&PointwiseOp::<P>(std::marker::PhantomData))?;
        return Ok(x);
    }
    pointwise::<P>(&x, other)
}

/// The tanh approximation of GELU (transformers' `gelu_new`, GPT-2's activation), fused with a
/// backward pass on the CPU in f32; candle's `gelu` elsewhere.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    pointwise::<GeluTanh>(x, Tensor::gelu)
}

/// Exact (erf) GELU, `x Φ(x)`, as transformers' `gelu`: fused with a backward pass on the CPU
/// in f32 (a vectorisable erf instead of libm's), candle's `gelu_erf` elsewhere.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    pointwise::<Gelu>(x, Tensor::gelu_erf)
}

/// SiLU (swish), `x·σ(x)`: fused with a backward pass on the CPU in f32 (the vectorisable
/// [`sigmoid`] instead of libm's `exp`), candle's `silu` elsewhere.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    pointwise::<Silu>(x, Tensor::silu)
}

/// SwiGLU's gated product for one position: `out[i] = silu(gate[i])·up[i]`, with the
/// vectorisable [`sigmoid`] (the value [`silu`] gives). [`swiglu`] (the fused decode step) and
/// [`swiglu_stacked`] both take it, so the two paths agree bit for bit.
#[inline(always)]
fn swiglu_row(gate: &[f32], up: &[f32], out: &mut [std::mem::MaybeUninit<f32>]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        o.write(Silu::value(g) * u);
    }
}

/// `silu(gate) ⊙ up` for one position (a decode step), vectorised on this thread.
pub(crate) fn swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    let mut out = uninit::buffer(gate.len().min(up.len()));
    vectorized(
        #[inline(always)]
        || swiglu_row(gate, up, &mut out),
    );
    // SAFETY: `swiglu_row` wrote every value: `out` is as long as the shorter input.
    unsafe { uninit::assume_written(out) }
}

/// SwiGLU on rows stacked as `[gate | up]` (…, 2·`width`): `silu(gate) ⊙ up`, (…, `width`).
/// Outside training, on the CPU in f32, one pass over the rows on the spinning helpers;
/// otherwise [`silu`] and a product, which record their gradients.
pub fn swiglu_stacked(both: &Tensor, width: usize) -> Result<Tensor> {
    let last = both.rank().saturating_sub(1);
    if both.dim(last)? != 2 * width {
        return Err(crate::error::Error::config(
            "swiglu",
            format!("rows of {} values, expected 2 × {width}", both.dim(last)?),
        ));
    }
    let fused = both.device().is_cpu()
        && both.dtype() == DType::F32
        && !candle_core::backprop::grad_tracking()
        && width > 0;
    if !fused {
        let gate = both.narrow(last, 0, width)?;
        let up = both.narrow(last, width, width)?;
        return Ok((silu(&gate)? * up)?);
    }
    let mut shape = both.dims().to_vec();
    shape[last] = width;
    let out = with_f32(both, |values| {
        let mut out = uninit::buffer(values.len() / 2);
        let rows_per_task = super::norm::rows_per_task(width);
        spin_pool::for_each_chunk_mut(&mut out, rows_per_task * width, |i, o| {
            let first = i * rows_per_task;
            vectorized(
                #[inline(always)]
                || {
                    for (r, o) in o.chunks_exact_mut(width).enumerate() {
                        let row = &values[(first + r) * 2 * width..(first + r + 1) * 2 * width];
                        let (gate, up) = row.split_at(width);
                        swiglu_row(gate, up, o);
                    }
                },
            )
        });
        // SAFETY: every task wrote each of its rows in full, and the tasks cover `out`.
        unsafe { uninit::assume_written(out) }
    })?;
    Ok(Tensor::from_vec(out, shape, both.device())?)
}

/// The activations' functions of one value, as their ops compute each output (a product that
/// takes the activation as it writes its sums gives the same bits).
pub(crate) mod values {
    use super::{Gelu, GeluTanh, Pointwise, Silu};

    /// Exact (erf) GELU.
    #[inline(always)]
    pub(crate) fn gelu(v: f32) -> f32 {
        Gelu::value(v)
    }

    /// tanh-approximated GELU.
    #[inline(always)]
    pub(crate) fn gelu_tanh(v: f32) -> f32 {
        GeluTanh::value(v)
    }

    /// SiLU.
    #[inline(always)]
    pub(crate) fn silu(v: f32) -> f32 {
        Silu::value(v)
    }

    /// ReLU.
    #[inline(always)]
    pub(crate) fn relu(v: f32) -> f32 {
        v.max(0.0)
    }
}

/// The activation of a feed-forward layer, as `config.json`'s `hidden_act` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU: transformers' `gelu`.
    Gelu,
    /// tanh-approximated GELU: `gelu_new`, `gelu_pytorch_tanh`.
    GeluTanh,
    /// ReLU.
    Relu,
    /// SiLU / swish: `x·σ(x)` (Marian).
    Silu,
}

impl Activation {
    /// The activation of a `hidden_act` name, `None` when prosa does not have it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }

    /// Applies the activation to a tensor the caller owns and will not read again (a
    /// projection's fresh output): in inference, in place — so any tensor sharing `x`'s storage
    /// (a clone, a view) sees the activated values. Crate-only for that reason.
    pub(crate) fn apply_owned(self, x: Tensor) -> Result<Tensor> {
        match self {
            Activation::Gelu => pointwise_owned::<Gelu>(x, Tensor::gelu_erf),
            Activation::GeluTanh => pointwise_owned::<GeluTanh>(x, Tensor::gelu),
            Activation::Silu => pointwise_owned::<Silu>(x, Tensor::silu),
            Activation::Relu => Ok(x.relu()?),
        }
    }

    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Gelu => gelu(x)?,
            Activation::GeluTanh => gelu_tanh(x)?,
            Activation::Relu => x.relu()?,
            Activation::Silu => silu(x)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{exp_fast, exp_reduced, sigmoid, tanh, Activation, ROUND};

    #[test]
    fn an_owned_input_takes_the_activation_in_place_with_the_same_bits() {
        let device = candle_core::Device::Cpu;
        let values: Vec<f32> = (0..40_000)
            .map(|i| (i as f32 * 0.013).sin() * 6.0)
            .collect();
        for act in [Activation::Gelu, Activation::GeluTanh, Activation::Silu] {
            let x = candle_core::Tensor::from_vec(values.clone(), (200, 200), &device).unwrap();
            let fresh = act.apply(&x).unwrap().flatten_all().unwrap();
            let _no_grad = candle_core::no_grad();
            let owned = act.apply_owned(x.narrow(0, 50, 100).unwrap()).unwrap();
            let expected = fresh.narrow(0, 50 * 200, 100 * 200).unwrap();
            assert_eq!(
                owned.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                expected.to_vec1::<f32>().unwrap(),
                "{act:?}"
            );
            // Written over the input's own rows (the view shares them): no copy was made.
            let input_rows = x.narrow(0, 50, 100).unwrap().flatten_all().unwrap();
            assert_eq!(
                input_rows.to_vec1::<f32>().unwrap(),
                expected.to_vec1::<f32>().unwrap()
            );
        }
    }

    #[test]
    fn exp_fast_reads_the_exponent_to_the_bits_of_a_float_to_int_conversion() {
        // The same reduction and polynomial, with 2ᵏ made from `k as i32`.
        let by_conversion = |x: f32| {
            let (e, rounded) = exp_reduced(x);
            let k = rounded - ROUND;
            e * f32::from_bits(((k as i32 + 127) as u32) << 23)
        };
        for i in 0..=400_000 {
            let x = -100.0 + 200.0 * i as f32 / 400_000.0;
            assert_eq!(exp_fast(x).to_bits(), by_conversion(x).to_bits(), "x = {x}");
        }
        for x in [f32::NEG_INFINITY, -87.0, -0.0, 0.0, 88.0, f32::INFINITY] {
            assert_eq!(exp_fast(x).to_bits(), by_conversion(x).to_bits(), "x = {x}");
        }
        assert!(exp_fast(f32::NAN).is_nan());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp_fast_lanes_gives_exp_fasts_bits() {
        use std::arch::x86_64::{_mm512_loadu_ps, _mm512_storeu_ps};
        if !crate::nn::panel_tasks::has_avx512f() {
            return;
        }
        let xs: Vec<f32> = (0..=400_000)
            .map(|i| -100.0 + 200.0 * i as f32 / 400_000.0)
            .chain([f32::NEG_INFINITY, -87.0, -0.0, 0.0, 88.0])
            .collect();
        for chunk in xs.chunks(16) {
            let mut lanes = [0f32; 16];
            lanes[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: the CPU has AVX-512F (checked above); both pointers cover 16 values.
            unsafe {
                let e = super::exp_fast_lanes(_mm512_loadu_ps(lanes.as_ptr()));
                _mm512_storeu_ps(lanes.as_mut_ptr(), e);
            }
            for (x, e) in chunk.iter().zip(lanes) {
                assert_eq!(e.to_bits(), exp_fast(*x).to_bits(), "x = {x}");
            }
        }
    }

    #[test]
    fn fast_activations_are_within_1e6_of_libm() {
        let mut worst = (0f32, 0f32);
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let e_tanh = (tanh(x) - x.tanh()).abs();
            let e_sig = (sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs();
            worst = (worst.0.max(e_tanh), worst.1.max(e_sig));
        }
        assert!(
            worst.0 < 1e-6 && worst.1 < 1e-6,
            "max errors: tanh {}, sigmoid {}",
            worst.0,
            worst.1
        );
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
        assert!(sigmoid(-100.0).abs() < 1e-6);
    }

    #[test]
    fn fast_tanh_is_within_1e6_of_libm() {
        let mut worst = 0f32;
        for i in -120_000..=120_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((tanh(x) - (x as f64).tanh() as f32).abs());
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(tanh(20.0), 1.0);
    }

    #[test]
    fn fast_erf_is_within_1e6_of_libm() {
        let mut worst = 0f32;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let exact = libm_erf(x as f64) as f32;
            worst = worst.max((super::erf(x) - exact).abs());
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(super::erf(9.0), 1.0);
    }

    /// erf in f64 by its Maclaurin series (|x| ≤ 3) or the continued fraction of erfc beyond.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() > 3.0 {
            let t = x.abs();
            // Lentz-free continued fraction, 60 terms: erfc(t) = exp(-t²)/√π · 1/(t + 1/2/(t + 1/(t + …))).
            let mut f = t;
            for k in (1..60).rev() {
                f = t + (k as f64 / 2.0) / f;
            }
            let erfc = (-t * t).exp() / std::f64::consts::PI.sqrt() / f;
            return x.signum() * (1.0 - erfc);
        }
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }
}
