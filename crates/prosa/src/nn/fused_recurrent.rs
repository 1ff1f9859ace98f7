//! The time loop of one recurrent layer direction as a single candle op, forward and backward
//! (backpropagation through time) written over plain `f32` slices with one `gemm` call per step
//! and fused gate arithmetic. Autograd over per-step tensor ops allocates a dozen tensors per
//! step and records them all; this does the same arithmetic with no allocation inside the loop.
//!
//! Inputs: `x` (batch, seq, G·H) — the input projections `W_ih x_t + b_ih` of every step, computed
//! outside with one matrix product (so its gradient flows through candle as usual) — `W_hh`
//! (G·H, H) and `b_hh` (G·H). The op's result is the hidden state of every step (batch, seq, H);
//! a per-step *record* (batch, seq, K) of the states and gate activations, which the backward
//! pass needs, stays inside the op (the autograd graph keeps the op alive until then).
//! The equations are those of [`super::recurrent`].

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};

use super::recurrent::CellKind;

/// The fused op: one direction of one layer.
pub(crate) struct FusedRecurrent {
    pub cell: CellKind,
    pub hidden: usize,
    /// 1 for real steps, 0 for padding, (batch × seq); `None`: all real.
    pub mask: Option<Vec<f32>>,
    /// Read the sequence from its end.
    pub reverse: bool,
    /// The forward pass's record, for the backward pass.
    pub record: std::sync::Mutex<Vec<f32>>,
}

impl FusedRecurrent {
    /// Width of one step's record.
    pub fn record_width(&self) -> usize {
        let h = self.hidden;
        match self.cell {
            CellKind::Rnn => 2 * h,  // h_t | tanh output
            CellKind::Lstm => 7 * h, // h_t | c_t | i | f | g | o | tanh(c_new)
            CellKind::Gru => 5 * h,  // h_t | r | z | n | W_hn h + b_hn
        }
    }

    fn order(&self, seq: usize) -> Vec<usize> {
        if self.reverse {
            (0..seq).rev().collect()
        } else {
            (0..seq).collect()
        }
    }

    fn keep(&self, b: usize, t: usize, seq: usize) -> f32 {
        self.mask.as_ref().map_or(1.0, |m| m[b * seq + t])
    }
}

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

/// `state ← state + keep · (new − state)`: the new value on real steps, the old on padding.
#[inline(always)]
fn blend_into(state: &mut [f32], new: &[f32], keep: f32) {
    for (s, n) in state.iter_mut().zip(new) {
        *s += keep * (n - *s);
    }
}

/// Whether the small per-step products use the thread pool.
const PARALLEL_STEP: bool = true;

/// `dst (m×n) = (accumulate ? dst : 0) + lhs · rhs`, with explicit (column, row) strides;
/// `parallel` spreads the product over the rayon pool.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_strides: (isize, isize),
    lhs: &[f32],
    lhs_strides: (isize, isize),
    rhs: &[f32],
    rhs_strides: (isize, isize),
    accumulate: bool,
    parallel: bool,
) {
    // SAFETY: every caller passes slices whose extents cover m×k, k×n and m×n under the given
    // strides (checked by the debug assertions below), and dst does not alias lhs or rhs.
    debug_assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides.0,
            dst_strides.1,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.0,
            lhs_strides.1,
            rhs.as_ptr(),
            rhs_strides.0,
            rhs_strides.1,
            1.0,
            1.0,
            false,
            false,
            false,
            if parallel {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            },
        )
    }
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = s else {
        candle_core::bail!("fused recurrent: {what} must be f32")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("fused recurrent: {what} must be contiguous")
    };
    Ok(&values[a..b])
}

impl CustomOp3 for FusedRecurrent {
    fn name(&self) -> &'static str {
        "prosa-fused-recurrent"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (batch, seq, g) = l1.shape().dims3()?;
        let (x, w, bias) = (
            contiguous(s1, l1, "x")?,
            contiguous(s2, l2, "W_hh")?,
            contiguous(s3, l3, "b_hh")?,
        );
        let h = self.hidden;
        let k = self.record_width();
        let mut record = vec![0f32; batch * seq * k];
        let mut h_prev = vec![0f32; batch * h];
        let mut c_prev = vec![0f32; batch * h];
        let mut hh = vec![0f32; batch * g];
        for t in self.order(seq) {
            // hh = h_prev · W_hhᵀ + b_hh: W_hh is (g, h) row-major, so W_hhᵀ[k][n] = w[n·h + k].
            for row in hh.chunks_mut(g) {
                row.copy_from_slice(bias);
            }
            matmul(
                batch,
                g,
                h,
                &mut hh,
                (1, g as isize),
                &h_prev,
                (1, h as isize),
                w,
                (h as isize, 1),
                true,
                PARALLEL_STEP,
            );
            for b in 0..batch {
                let xt = &x[(b * seq + t) * g..(b * seq + t + 1) * g];
                // Pre-activations x_t + W_hh h + b_hh, in place in hh (GRU: all but the n block).
                let pre = &mut hh[b * g..(b + 1) * g];
                let rec = &mut record[(b * seq + t) * k..(b * seq + t + 1) * k];
                let m = self.keep(b, t, seq);
                let hp = &mut h_prev[b * h..(b + 1) * h];
                // Each step below is one simple loop over contiguous slices, so each vectorises.
                match self.cell {
                    CellKind::Rnn => {
                        let (h_out, a) = rec.split_at_mut(h);
                        for ((a, p), x) in a.iter_mut().zip(pre.iter()).zip(xt) {
                            *a = tanh(p + x);
                        }
                        blend_into(hp, a, m);
                        h_out.copy_from_slice(hp);
                    }
                    CellKind::Lstm => {
                        let cp = &mut c_prev[b * h..(b + 1) * h];
                        for (p, x) in pre.iter_mut().zip(xt) {
                            *p += x;
                        }
                        let (ifo_pre, rest) = pre.split_at_mut(2 * h);
                        let (g_pre, o_pre) = rest.split_at_mut(h);
                        ifo_pre
                            .iter_mut()
                            .chain(o_pre.iter_mut())
                            .for_each(|v| *v = sigmoid(*v));
                        g_pre.iter_mut().for_each(|v| *v = tanh(*v));
                        // Record layout: h | c | i f g o (the order of `pre`) | tanh(c_new).
                        let (hc, rest) = rec.split_at_mut(2 * h);
                        let (gates, tc) = rest.split_at_mut(4 * h);
                        gates.copy_from_slice(pre);
                        let (i, rest) = gates.split_at(h);
                        let (f, rest) = rest.split_at(h);
                        let (gg, o) = rest.split_at(h);
                        // c_new into tc, then tanh(c_new) in place.
                        for ((((t, i), f), gv), c) in
                            tc.iter_mut().zip(i).zip(f).zip(gg).zip(cp.iter())
                        {
                            *t = f * c + i * gv;
                        }
                        blend_into(cp, tc, m);
                        tc.iter_mut().for_each(|v| *v = tanh(*v));
                        let (h_out, c_out) = hc.split_at_mut(h);
                        for ((hv, o), t) in hp.iter_mut().zip(o).zip(tc.iter()) {
                            *hv += m * (o * t - *hv);
                        }
                        h_out.copy_from_slice(hp);
                        c_out.copy_from_slice(cp);
                    }
                    CellKind::Gru => {
                        let (rz_pre, hn) = pre.split_at_mut(2 * h);
                        for (p, x) in rz_pre.iter_mut().zip(xt) {
                            *p = sigmoid(*p + x);
                        }
                        // Record layout: h | r | z | n | W_hn h + b_hn.
                        let (h_out, rest) = rec.split_at_mut(h);
                        let (rz, rest) = rest.split_at_mut(2 * h);
                        let (n, hn_out) = rest.split_at_mut(h);
                        rz.copy_from_slice(rz_pre);
                        hn_out.copy_from_slice(hn);
                        let (r, z) = rz.split_at(h);
                        for (((n, r), hn), x) in
                            n.iter_mut().zip(r).zip(hn.iter()).zip(&xt[2 * h..])
                        {
                            *n = tanh(x + r * hn);
                        }
                        for ((hv, z), n) in hp.iter_mut().zip(z).zip(n.iter()) {
                            let h_new = (1.0 - z) * n + z * *hv;
                            *hv += m * (h_new - *hv);
                        }
                        h_out.copy_from_slice(hp);
                    }
                }
            }
        }
        let states: Vec<f32> = record
            .chunks_exact(k)
            .flat_map(|r| r[..h].iter().copied())
            .collect();
        *self.record.lock().unwrap_or_else(|p| p.into_inner()) = record;
        Ok((CpuStorage::F32(states), Shape::from((batch, seq, h))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (batch, seq, g) = x.dims3()?;
        let record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        if record.len() != batch * seq * self.record_width() {
            candle_core::bail!("fused recurrent: backward without a matching forward pass");
        }
        let (dx, dw, db) = with_f32(w, |w_values| {
            with_f32(grad_res, |grad| {
                self.backward(batch, seq, g, w_values, &record, grad)
            })
        })??;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (batch, seq, g), device)?),
            Some(Tensor::from_vec(dw, (g, self.hidden), device)?),
            Some(Tensor::from_vec(db, g, device)?),
        ))
    }
}

/// Runs `f` on the values of `t` in place when it is a contiguous f32 CPU tensor, otherwise on
/// a copy.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(values)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&values[a..b]));
        }
    }
    let copy = t
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    Ok(f(&copy))
}

impl FusedRecurrent {
    /// Backpropagation through time: gradients of the input projections, `W_hh` and `b_hh`
    /// from the gradient of the hidden states (batch, seq, H).
    fn backward(
        &self,
        batch: usize,
        seq: usize,
        g: usize,
        w_values: &[f32],
        record: &[f32],
        grad: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let h = self.hidden;
        let k = self.record_width();
        let mut dx = vec![0f32; batch * seq * g];
        let mut dw = vec![0f32; g * h];
        let mut db = vec![0f32; g];
        let mut dh = vec![0f32; batch * h]; // gradient reaching h_t from later steps
        let mut dc = vec![0f32; batch * h]; // LSTM: gradient reaching c_t from later steps
                                            // Per step (in processing order): the gradient w.r.t. x_t + hh (RNN, LSTM) or hh (GRU),
                                            // and h_{t-1}; dW_hh is one product over all steps at the end.
        let mut all_dgates = vec![0f32; seq * batch * g];
        let mut all_h_prev = vec![0f32; seq * batch * h];
        let mut c_prev = vec![0f32; batch * h];
        let order = self.order(seq);
        for (pos, &t) in order.iter().enumerate().rev() {
            let previous = pos.checked_sub(1).map(|p| order[p]);
            let dgates = &mut all_dgates[pos * batch * g..(pos + 1) * batch * g];
            let h_prev = &mut all_h_prev[pos * batch * h..(pos + 1) * batch * h];
            for b in 0..batch {
                let (hp, cp) = (
                    &mut h_prev[b * h..(b + 1) * h],
                    &mut c_prev[b * h..(b + 1) * h],
                );
                match previous {
                    Some(tp) => {
                        let prev = &record[(b * seq + tp) * k..];
                        hp.copy_from_slice(&prev[..h]);
                        if self.cell == CellKind::Lstm {
                            cp.copy_from_slice(&prev[h..2 * h]);
                        }
                    }
                    None => {
                        hp.fill(0.0);
                        cp.fill(0.0);
                    }
                }
            }
            for b in 0..batch {
                let rec = &record[(b * seq + t) * k..(b * seq + t + 1) * k];
                let gr = &grad[(b * seq + t) * h..(b * seq + t + 1) * h];
                let m = self.keep(b, t, seq);
                let hp = &h_prev[b * h..(b + 1) * h];
                let dht = &mut dh[b * h..(b + 1) * h];
                let dgt = &mut dgates[b * g..(b + 1) * g];
                let dxt = &mut dx[(b * seq + t) * g..(b * seq + t + 1) * g];
                match self.cell {
                    CellKind::Rnn => {
                        let a = &rec[h..2 * h];
                        for j in 0..h {
                            let total = gr[j] + dht[j];
                            dgt[j] = m * total * (1.0 - a[j] * a[j]);
                            dht[j] = (1.0 - m) * total; // the gemm below adds da · W_hh
                        }
                        dxt.copy_from_slice(dgt);
                    }
                    CellKind::Lstm => {
                        let cp = &c_prev[b * h..(b + 1) * h];
                        let dct = &mut dc[b * h..(b + 1) * h];
                        let (gi, rest) = rec[2 * h..].split_at(h);
                        let (gf, rest) = rest.split_at(h);
                        let (gg, rest) = rest.split_at(h);
                        let (go, tcs) = rest.split_at(h);
                        let (di_out, rest) = dgt.split_at_mut(h);
                        let (df_out, rest) = rest.split_at_mut(h);
                        let (dg_out, do_out) = rest.split_at_mut(h);
                        // Exact lengths let the compiler drop the bounds checks, so the loop vectorises.
                        let (tcs, do_out, cp, gr, dht, dct) = (
                            &tcs[..h],
                            &mut do_out[..h],
                            &cp[..h],
                            &gr[..h],
                            &mut dht[..h],
                            &mut dct[..h],
                        );
                        for j in 0..h {
                            let total = gr[j] + dht[j];
                            let (i, f, gv, o, tc) = (gi[j], gf[j], gg[j], go[j], tcs[j]);
                            let dh_new = m * total;
                            let dc_new = m * dct[j] + dh_new * o * (1.0 - tc * tc);
                            di_out[j] = dc_new * gv * i * (1.0 - i);
                            df_out[j] = dc_new * cp[j] * f * (1.0 - f);
                            dg_out[j] = dc_new * i * (1.0 - gv * gv);
                            do_out[j] = dh_new * tc * o * (1.0 - o);
                            dct[j] = (1.0 - m) * dct[j] + dc_new * f;
                            dht[j] = (1.0 - m) * total;
                        }
                        dxt.copy_from_slice(dgt);
                    }
                    CellKind::Gru => {
                        let (gr_r, rest) = rec[h..].split_at(h);
                        let (gz, rest) = rest.split_at(h);
                        let (gn, rest) = rest.split_at(h);
                        let ghn = &rest[..h];
                        for j in 0..h {
                            let total = gr[j] + dht[j];
                            let (r, z, n, hn) = (gr_r[j], gz[j], gn[j], ghn[j]);
                            let dh_new = m * total;
                            let dan = dh_new * (1.0 - z) * (1.0 - n * n);
                            let dar = dan * hn * r * (1.0 - r);
                            let daz = dh_new * (hp[j] - n) * z * (1.0 - z);
                            dxt[j] = dar;
                            dxt[h + j] = daz;
                            dxt[2 * h + j] = dan;
                            dgt[j] = dar;
                            dgt[h + j] = daz;
                            dgt[2 * h + j] = dan * r;
                            dht[j] = (1.0 - m) * total + dh_new * z;
                        }
                    }
                }
            }
            // The gradient flowing to h_{t-1}: dh (batch×h) += dgates (batch×g) · W_hh (g×h).
            matmul(
                batch,
                h,
                g,
                &mut dh,
                (1, h as isize),
                dgates,
                (1, g as isize),
                w_values,
                (1, h as isize),
                true,
                PARALLEL_STEP,
            );
        }
        // dW_hh (g×h) = Σ_steps dgatesᵀ · h_prev, as one (g × steps·batch) · (steps·batch × h) product.
        let rows = seq * batch;
        matmul(
            g,
            h,
            rows,
            &mut dw,
            (1, h as isize),
            &all_dgates,
            (g as isize, 1),
            &all_h_prev,
            (1, h as isize),
            false,
            true,
        );
        for row in all_dgates.chunks_exact(g) {
            for (acc, v) in db.iter_mut().zip(row) {
                *acc += v;
            }
        }
        (dx, dw, db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
