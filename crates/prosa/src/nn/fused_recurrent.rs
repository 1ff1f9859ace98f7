//! The time loop of one recurrent layer direction as a single candle op, forward and backward
//! (backpropagation through time) written over plain `f32` slices with one `gemm` call per step
//! and fused gate arithmetic. Autograd over per-step tensor ops allocates a dozen tensors per
//! step and records them all; this does the same arithmetic with no allocation inside the loop.
//!
//! Inputs: the layer input `x` (batch, seq, I), both weight matrices side by side as
//! (G·H, I + H) — `[W_ih | W_hh]` — and both biases stacked as (2, G·H): `b_ih` then `b_hh`.
//! The input projections `W_ih x_t` of a chunk's steps are one matrix product before its time
//! loop; the gradients of weights and biases are products and sums the op makes itself, so
//! candle's autograd sees a single node instead of a product, a broadcast and a reduction.
//! The op's result is the hidden state of every step (batch, seq, H); a per-step *record*
//! (batch, seq, K) of the states and gate activations, which the backward pass needs, stays
//! inside the op (the autograd graph keeps the op alive until then).
//!
//! The batch is cut into one chunk of rows per thread and each chunk runs its whole time loop
//! on its own (rows of a batch never interact), so there is no synchronisation inside the loop.
//! The equations are those of the recurrent layers (`nn::recurrent`).

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::activation::{sigmoid, tanh};
use super::cell::CellKind;
use super::gemm::{cpu_f32 as contiguous, matmul, with_f32};
use super::scratch::Scratch;

/// The fused op: one direction of one layer.
pub(crate) struct FusedRecurrent {
    pub cell: CellKind,
    pub hidden: usize,
    /// 1 for real steps, 0 for padding, (batch × seq); `None`: all real.
    pub mask: Option<Vec<f32>>,
    /// Read the sequence from its end.
    pub reverse: bool,
    /// The forward pass's record, for the backward pass.
    pub record: std::sync::Mutex<Option<Scratch>>,
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

    /// Rows of the batch per parallel chunk: the batch split evenly over the thread pool.
    fn rows_per_chunk(batch: usize) -> usize {
        batch.div_ceil(rayon::current_num_threads().clamp(1, batch.max(1)))
    }

    /// The mask rows of the chunk starting at row `first` with `rows` rows.
    fn mask_rows(&self, first: usize, rows: usize, seq: usize) -> Option<&[f32]> {
        self.mask
            .as_deref()
            .map(|m| &m[first * seq..(first + rows) * seq])
    }
}

/// 1 for a real step, 0 for padding, of row `b` at step `t` in a chunk's mask.
#[inline(always)]
fn keep(mask: Option<&[f32]>, b: usize, t: usize, seq: usize) -> f32 {
    mask.map_or(1.0, |m| m[b * seq + t])
}

/// `state ← state + keep · (new − state)`: the new value on real steps, the old on padding.
#[inline(always)]
fn blend_into(state: &mut [f32], new: &[f32], keep: f32) {
    for (s, n) in state.iter_mut().zip(new) {
        *s += keep * (n - *s);
    }
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
        let (batch, seq, input) = l1.shape().dims3()?;
        let (x, weights, biases) = (
            contiguous(s1, l1, "x")?,
            contiguous(s2, l2, "weights")?,
            contiguous(s3, l3, "biases")?,
        );
        let (h, k) = (self.hidden, self.record_width());
        let g = self.cell.gates() * h;
        if weights.len() != g * (input + h) || biases.len() != 2 * g {
            candle_core::bail!(
                "fused recurrent: weights must be ({g}, {}) and biases (2, {g})",
                input + h
            );
        }
        let (b_ih, b_hh) = biases.split_at(g);
        // W_ihᵀ (I, g) and W_hhᵀ (h, g), row-major: the products read them far faster than
        // the transposed views of the weights.
        let (w_ih_t, w_hh_t) = transposed_blocks(weights, g, input, h);
        let rows = Self::rows_per_chunk(batch);
        let mut record = Scratch::take(batch * seq * k);
        record
            .par_chunks_mut(rows * seq * k)
            .zip(x.par_chunks(rows * seq * input))
            .enumerate()
            .for_each(|(c, (rec, xc))| {
                let n = xc.len() / (seq * input);
                let mut projected = Scratch::take(n * seq * g);
                matmul(
                    n * seq,
                    g,
                    input,
                    &mut projected,
                    (1, g as isize),
                    xc,
                    (1, input as isize),
                    &w_ih_t,
                    (1, g as isize),
                    false,
                    false,
                );
                let mask = self.mask_rows(c * rows, n, seq);
                self.forward_chunk(&projected, &w_hh_t, b_ih, b_hh, mask, seq, rec);
            });
        let states: Vec<f32> = record
            .chunks_exact(k)
            .flat_map(|r| r[..h].iter().copied())
            .collect();
        *self.record.lock().unwrap_or_else(|p| p.into_inner()) = Some(record);
        Ok((CpuStorage::F32(states), Shape::from((batch, seq, h))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weights: &Tensor,
        _biases: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (batch, seq, input) = x.dims3()?;
        let g = self.cell.gates() * self.hidden;
        let guard = self.record.lock().unwrap_or_else(|p| p.into_inner());
        let record: &[f32] = guard.as_deref().unwrap_or_default();
        if record.len() != batch * seq * self.record_width() {
            candle_core::bail!("fused recurrent: backward without a matching forward pass");
        }
        let (dx, dw, db) = with_f32(x, |x_values| {
            with_f32(weights, |w_values| {
                with_f32(grad_res, |grad| {
                    self.backward(batch, seq, x_values, w_values, record, grad)
                })
            })
        })????;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (batch, seq, input), device)?),
            Some(Tensor::from_vec(dw, (g, input + self.hidden), device)?),
            Some(Tensor::from_vec(db, (2, g), device)?),
        ))
    }
}

/// The two blocks of `[W_ih | W_hh]` (g, I + H), each transposed to row-major (I, g) and (H, g).
fn transposed_blocks(weights: &[f32], g: usize, input: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let mut w_ih_t = vec![0f32; input * g];
    let mut w_hh_t = vec![0f32; h * g];
    for (n, row) in weights.chunks_exact(input + h).enumerate() {
        let (wi, wh) = row.split_at(input);
        for (kk, v) in wi.iter().enumerate() {
            w_ih_t[kk * g + n] = *v;
        }
        for (kk, v) in wh.iter().enumerate() {
            w_hh_t[kk * g + n] = *v;
        }
    }
    (w_ih_t, w_hh_t)
}

/// Adds every `width`-wide row of `rows` into `acc`.
fn sum_rows_into(acc: &mut [f32], rows: &[f32]) {
    for row in rows.chunks_exact(acc.len()) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
}

impl FusedRecurrent {
    /// The time loop over one chunk of rows: `x` (rows, seq, g) in, `record` (rows, seq, k) out;
    /// `w_t` is W_hhᵀ (h, g) row-major.
    #[allow(clippy::too_many_arguments)]
    fn forward_chunk(
        &self,
        x: &[f32],
        w_t: &[f32],
        b_ih: &[f32],
        b_hh: &[f32],
        mask: Option<&[f32]>,
        seq: usize,
        record: &mut [f32],
    ) {
        let (h, k, g) = (self.hidden, self.record_width(), b_hh.len());
        let batch = x.len() / (seq * g);
        let mut h_prev = vec![0f32; batch * h];
        let mut c_prev = vec![0f32; batch * h];
        let mut hh = vec![0f32; batch * g];
        for t in self.order(seq) {
            // hh = h_prev · W_hhᵀ + b_hh.
            for row in hh.chunks_mut(g) {
                row.copy_from_slice(b_hh);
            }
            matmul(
                batch,
                g,
                h,
                &mut hh,
                (1, g as isize),
                &h_prev,
                (1, h as isize),
                w_t,
                (1, g as isize),
                true,
                false,
            );
            for b in 0..batch {
                let xt = &x[(b * seq + t) * g..(b * seq + t + 1) * g];
                // Pre-activations x_t + b_ih + W_hh h + b_hh, in place in hh (GRU: all but the n block).
                let pre = &mut hh[b * g..(b + 1) * g];
                let rec = &mut record[(b * seq + t) * k..(b * seq + t + 1) * k];
                let m = keep(mask, b, t, seq);
                let hp = &mut h_prev[b * h..(b + 1) * h];
                // Each step below is one simple loop over contiguous slices, so each vectorises.
                match self.cell {
                    CellKind::Rnn => {
                        let (h_out, a) = rec.split_at_mut(h);
                        for (((a, p), x), bi) in a.iter_mut().zip(pre.iter()).zip(xt).zip(b_ih) {
                            *a = tanh(p + x + bi);
                        }
                        blend_into(hp, a, m);
                        h_out.copy_from_slice(hp);
                    }
                    CellKind::Lstm => {
                        let cp = &mut c_prev[b * h..(b + 1) * h];
                        for ((p, x), bi) in pre.iter_mut().zip(xt).zip(b_ih) {
                            *p += x + bi;
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
                        for ((p, x), bi) in rz_pre.iter_mut().zip(xt).zip(b_ih) {
                            *p = sigmoid(*p + x + bi);
                        }
                        // Record layout: h | r | z | n | W_hn h + b_hn.
                        let (h_out, rest) = rec.split_at_mut(h);
                        let (rz, rest) = rest.split_at_mut(2 * h);
                        let (n, hn_out) = rest.split_at_mut(h);
                        rz.copy_from_slice(rz_pre);
                        hn_out.copy_from_slice(hn);
                        let (r, z) = rz.split_at(h);
                        for ((((n, r), hn), x), bi) in n
                            .iter_mut()
                            .zip(r)
                            .zip(hn.iter())
                            .zip(&xt[2 * h..])
                            .zip(&b_ih[2 * h..])
                        {
                            *n = tanh(x + bi + r * hn);
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
    }

    /// Backpropagation through time: gradients of the layer input (batch, seq, I), of
    /// `[W_ih | W_hh]` (g, I + H) and of both biases (2, g) from the gradient of the hidden
    /// states (batch, seq, H).
    fn backward(
        &self,
        batch: usize,
        seq: usize,
        x: &[f32],
        weights: &[f32],
        record: &[f32],
        grad: &[f32],
    ) -> candle_core::Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (h, k) = (self.hidden, self.record_width());
        let g = self.cell.gates() * h;
        let input = x.len() / (batch * seq);
        let width = input + h;
        if weights.len() != g * width {
            candle_core::bail!("fused recurrent: weights changed shape since the forward pass");
        }
        let rows = Self::rows_per_chunk(batch);
        // Gradients of the input projections (batch, seq, g), of the layer input, and, per chunk,
        // per step (in processing order), per row, of the W_hh h + b_hh pre-activations and the
        // h_{t-1} they met; the weight gradients are one product each over all of them at the end.
        let mut d_projected = Scratch::take(batch * seq * g);
        let mut dx = vec![0f32; batch * seq * input];
        let mut all_dgates = Scratch::take(seq * batch * g);
        let mut all_h_prev = Scratch::take(seq * batch * h);
        d_projected
            .par_chunks_mut(rows * seq * g)
            .zip(dx.par_chunks_mut(rows * seq * input))
            .zip(all_dgates.par_chunks_mut(rows * seq * g))
            .zip(all_h_prev.par_chunks_mut(rows * seq * h))
            .enumerate()
            .for_each(|(c, (((dp, dx), dgates), h_prevs))| {
                let n = dp.len() / (seq * g);
                let first = c * rows;
                self.backward_chunk(
                    &weights[input..],
                    width,
                    &record[first * seq * k..(first + n) * seq * k],
                    &grad[first * seq * h..(first + n) * seq * h],
                    self.mask_rows(first, n, seq),
                    seq,
                    dp,
                    dgates,
                    h_prevs,
                );
                // The layer input's gradient: dx (rows·seq × I) = d_projected · W_ih.
                matmul(
                    n * seq,
                    input,
                    g,
                    dx,
                    (1, input as isize),
                    dp,
                    (1, g as isize),
                    weights,
                    (1, width as isize),
                    false,
                    false,
                );
            });
        // [dW_ih | dW_hh] (g × (I + H)): d_projectedᵀ · x and Σ dgatesᵀ · h_prev.
        let mut dw = vec![0f32; g * width];
        matmul(
            g,
            input,
            seq * batch,
            &mut dw,
            (1, width as isize),
            &d_projected,
            (g as isize, 1),
            x,
            (1, input as isize),
            false,
            true,
        );
        matmul(
            g,
            h,
            seq * batch,
            &mut dw[input..],
            (1, width as isize),
            &all_dgates,
            (g as isize, 1),
            &all_h_prev,
            (1, h as isize),
            false,
            true,
        );
        let mut db = vec![0f32; 2 * g];
        let (db_ih, db_hh) = db.split_at_mut(g);
        sum_rows_into(db_ih, &d_projected);
        sum_rows_into(db_hh, &all_dgates);
        Ok((dx, dw, db))
    }

    /// Backpropagation through time over one chunk of rows.
    #[allow(clippy::too_many_arguments)]
    fn backward_chunk(
        &self,
        w_hh: &[f32],
        w_row_stride: usize,
        record: &[f32],
        grad: &[f32],
        mask: Option<&[f32]>,
        seq: usize,
        dx: &mut [f32],
        all_dgates: &mut [f32],
        all_h_prev: &mut [f32],
    ) {
        let (h, k) = (self.hidden, self.record_width());
        let g = self.cell.gates() * h;
        let batch = grad.len() / (seq * h);
        let mut dh = vec![0f32; batch * h]; // gradient reaching h_t from later steps
        let mut dc = vec![0f32; batch * h]; // LSTM: gradient reaching c_t from later steps
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
                let m = keep(mask, b, t, seq);
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
                w_hh,
                (1, w_row_stride as isize),
                true,
                false,
            );
        }
    }
}
